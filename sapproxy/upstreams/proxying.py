"""
Corporate networks: every outbound call (token, AI API, inference) through the proxy that C{HTTPS_PROXY} (or,
for a plain-http upstream, C{HTTP_PROXY}) names, except hosts C{NO_PROXY} lists; the same variables curl and
requests read, upper or lower case.

The gateway opens a tunnel with C{CONNECT host:port} and speaks to the upstream through it (TLS end to end for
https: the proxy sees neither tokens nor prompts), so one mechanism serves both schemes and the connection
pool keeps tunnels open like any other connection.
"""

from __future__ import annotations

import base64
import urllib.request
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer


@frozen
class Proxy:
    host: str
    port: int
    authorization: bytes | None = None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def proxy_from_url(url: str) -> Proxy:
    """
    C{http://[user:password@]host[:port]} (a bare C{host:port} too), as the proxy variables hold it.

    @raise ValueError: not a proxy URL this gateway can use.
    """
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http proxy URL: {url}")
    if parts.scheme == "https":
        raise ValueError(f"a proxy reached over TLS is not supported: {url} (use http://)")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = b"Basic " + base64.b64encode(pair)
    return Proxy(parts.hostname, parts.port or 3128, auth)


def proxy_for(scheme: str, host: str, port: int, environ: Mapping[str, str]) -> Proxy | None:
    """
    The proxy for a connection to C{scheme://host:port}, or C{None} to connect directly.
    """
    proxies = {k.lower(): v for k, v in environ.items() if k.lower() in ("https_proxy", "http_proxy", "no_proxy")}
    url = proxies.get(f"{scheme}_proxy")
    if not url:
        return None
    no_proxy = proxies.get("no_proxy", "")
    if no_proxy and _bypass(host, port, no_proxy):
        return None
    return proxy_from_url(url)


def _bypass(host: str, port: int, no_proxy: str) -> bool:
    # urllib's matching (suffixes, leading dots, host:port, "*"), with the list given rather than read from
    # this process's environment.
    return bool(urllib.request.proxy_bypass_environment(f"{host}:{port}", {"no": no_proxy}))  # type: ignore[attr-defined]


class _Tunnel(Protocol):
    """
    Asks the proxy for a tunnel; once it answers 200, hands the connection to the protocol the caller wanted
    and passes every byte through to it.
    """

    def __init__(self, target: bytes, authorization: bytes | None, factory: IProtocolFactory,
                 ready: Deferred[Protocol], proxy: str) -> None:
        self._target = target
        self._authorization = authorization
        self._factory = factory
        self._ready = ready
        self._proxy = proxy
        self._buffer = b""
        self._inner: Any = None

    def connectionMade(self) -> None:
        lines = [b"CONNECT " + self._target + b" HTTP/1.1", b"Host: " + self._target]
        if self._authorization:
            lines.append(b"Proxy-Authorization: " + self._authorization)
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self._buffer += data
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if not found:
            if len(self._buffer) > 16384:
                self._fail(f"proxy {self._proxy} sent an oversized answer to CONNECT")
            return
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or parts[1] != "200":
            self._fail(f"proxy {self._proxy} refused the tunnel to {self._target.decode()}: {status_line}")
            return
        self._buffer = b""
        inner: Any = self._factory.buildProtocol(self.transport.getPeer())  # type: ignore[union-attr]
        if inner is None:
            self._fail("the connection was refused by its own protocol factory")
            return
        self._inner = inner
        inner.makeConnection(self.transport)
        self._ready.callback(inner)
        if rest:
            inner.dataReceived(rest)

    def _fail(self, message: str) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]
        if not self._ready.called:
            self._ready.errback(ConnectError(string=message))

    def connectionLost(self, reason: Failure = Failure(ConnectError())) -> None:
        if self._inner is not None:
            self._inner.connectionLost(reason)
        elif not self._ready.called:
            self._ready.errback(ConnectError(string=f"proxy {self._proxy} closed the connection before the tunnel "
                                                    "was open"))


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """
    A connection to C{host:port} through an HTTP proxy's C{CONNECT} tunnel (wrap it in TLS for https).
    """

    def __init__(self, proxy_endpoint: IStreamClientEndpoint, proxy: Proxy, host: str, port: int) -> None:
        self._proxy_endpoint = proxy_endpoint
        self._proxy = proxy
        self._target = f"{host}:{port}".encode("ascii")

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        ready: Deferred[Protocol] = Deferred()
        factory = Factory.forProtocol(lambda: _Tunnel(self._target, self._proxy.authorization, protocolFactory,
                                                      ready, self._proxy.label))
        connected = self._proxy_endpoint.connect(factory)

        def tunnel(_: object) -> Deferred[Protocol]:
            return ready

        connected.addCallback(tunnel)
        return connected
