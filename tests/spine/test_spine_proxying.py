"""
HTTPS_PROXY / HTTP_PROXY / NO_PROXY: which calls go through the proxy, and the CONNECT tunnel on a real
loopback proxy, for plain http and for TLS (an X.509 token fetch through the proxy).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
import treq
from connect_proxy import ConnectProxy
from test_spine_x509_mtls import _key, tls_token_endpoint  # noqa: F401  (the fixture)
from twisted.internet import reactor
from twisted.internet.error import ConnectError
from twisted.web.server import Site

from sapproxy.simulator import default_simulator_config, make_simulator
from sapproxy.upstreams.http import make_http_client
from sapproxy.upstreams.proxying import Proxy, proxy_for, proxy_from_url
from sapproxy.upstreams.sap_aicore import XsuaaClient
from sapproxy.upstreams.sap_credentials import mtls_http_client

TOKEN_PATH = "/oauth/token?grant_type=client_credentials"


def test_which_calls_go_through_which_proxy() -> None:
    env = {"HTTPS_PROXY": "http://proxy.corp:8080", "http_proxy": "http://user:p%40ss@plain.corp",
           "NO_PROXY": "localhost,.internal.corp,10.0.0.1:8443"}
    assert proxy_for("https", "api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com", 443, env) == \
        Proxy("proxy.corp", 8080)
    plain = proxy_for("http", "sim.example", 80, env)
    assert plain is not None and plain.host == "plain.corp" and plain.port == 3128
    assert plain.authorization == b"Basic dXNlcjpwQHNz"  # user:p@ss
    assert proxy_for("https", "localhost", 443, env) is None
    assert proxy_for("https", "auth.internal.corp", 443, env) is None
    assert proxy_for("https", "10.0.0.1", 8443, env) is None
    assert proxy_for("https", "10.0.0.1", 443, env) is not None
    assert proxy_for("https", "anything", 443, {**env, "no_proxy": "*"}) is None
    assert proxy_for("https", "anything", 443, {}) is None
    assert proxy_from_url("proxy.corp:3129") == Proxy("proxy.corp", 3129)
    with pytest.raises(ValueError, match="over TLS is not supported"):
        proxy_from_url("https://proxy.corp")


@pytest.fixture
def simulator_base() -> Generator[tuple[Any, str], None, None]:
    sim = make_simulator(default_simulator_config(), reactor)  # type: ignore[arg-type]
    port = reactor.listenTCP(0, Site(sim.resource()), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield sim, f"http://127.0.0.1:{port.getHost().port}"
    pytest_twisted.blockon(port.stopListening())


@pytest_twisted.ensureDeferred
async def test_plain_http_calls_tunnel_through_the_proxy(simulator_base: tuple[Any, str]) -> None:
    sim, base = simulator_base
    with ConnectProxy() as proxy:
        clients = make_http_client(reactor, pool_size=4, connect_timeout=5, environ={"HTTP_PROXY": proxy.url})
        try:
            for _ in range(2):
                response = await clients.http.post(base + TOKEN_PATH, auth=("sim-client", "sim-secret"))
                assert response.code == 200
                await response.content()
            # One tunnel, kept in the pool for the second call.
            assert proxy.tunnels == [base.removeprefix("http://")]
            assert sim.stats.token_requests == 2
        finally:
            await clients.pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_no_proxy_connects_directly(simulator_base: tuple[Any, str]) -> None:
    _, base = simulator_base
    with ConnectProxy() as proxy:
        clients = make_http_client(reactor, pool_size=4, connect_timeout=5,
                                   environ={"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
        try:
            response = await clients.http.post(base + TOKEN_PATH, auth=("sim-client", "sim-secret"))
            assert response.code == 200
            await response.content()
            assert proxy.tunnels == []
        finally:
            await clients.pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_a_refusing_proxy_is_a_clear_connect_error(simulator_base: tuple[Any, str]) -> None:
    _, base = simulator_base
    with ConnectProxy(authorization="Basic dTpw") as proxy:
        clients = make_http_client(reactor, pool_size=4, connect_timeout=5, environ={"HTTP_PROXY": proxy.url})
        with pytest.raises(ConnectError, match="refused the tunnel .* 407 Proxy Authentication Required"):
            await clients.http.post(base + TOKEN_PATH, auth=("sim-client", "sim-secret"))
        authed = make_http_client(reactor, pool_size=4, connect_timeout=5,
                                  environ={"HTTP_PROXY": proxy.url.replace("http://", "http://u:p@")})
        response = await authed.http.post(base + TOKEN_PATH, auth=("sim-client", "sim-secret"))
        assert response.code == 200
        await response.content()
        await authed.pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_tls_end_to_end_through_the_tunnel(tls_token_endpoint: dict[str, Any]) -> None:  # noqa: F811
    endpoint = tls_token_endpoint
    with ConnectProxy() as proxy:
        key = _key(endpoint["base"], endpoint["client"])
        client = mtls_http_client(reactor, key, trust_root=endpoint["ca"], environ={"HTTPS_PROXY": proxy.url})
        grant = await XsuaaClient(None, reactor, timeout=10, client_for=lambda k: client).fetch(key)  # type: ignore[arg-type]
        assert grant.access_token in endpoint["sim"].issued_tokens()
        assert proxy.tunnels == [endpoint["base"].removeprefix("https://")]
