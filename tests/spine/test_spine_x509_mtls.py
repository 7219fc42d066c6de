"""
X.509 service keys: the token comes from C{certurl} over mutual TLS, on a real loopback TLS port that refuses
clients without a certificate from its CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor, ssl
from twisted.web.server import Site

from sapproxy.config import ServiceKey
from sapproxy.simulator import default_simulator_config, make_simulator
from sapproxy.upstreams.sap_aicore import TokenFetchError, XsuaaClient
from sapproxy.upstreams.sap_credentials import mtls_http_client


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(name: str, issuer: Any, issuer_key: Any, *, ca: bool = False, server: bool = False) -> tuple[Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


@pytest.fixture
def tls_token_endpoint() -> Generator[dict[str, Any], None, None]:
    ca_cert, ca_key = _issue("test CA", None, None, ca=True)
    server_cert, server_key = _issue("localhost", ca_cert.subject, ca_key, server=True)
    client_cert, client_key = _issue("sim-client", ca_cert.subject, ca_key)
    stranger_cert, stranger_key = _issue("stranger", None, None)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    ca = ssl.Certificate.loadPEM(pem(ca_cert))
    options = ssl.PrivateCertificate.loadPEM(pem(server_cert) + _pem_key(server_key)).options(ca)
    sim = make_simulator(default_simulator_config(), reactor)  # type: ignore[arg-type]
    port = reactor.listenSSL(0, Site(sim.resource()), options, interface="127.0.0.1")  # type: ignore[attr-defined]
    base = f"https://localhost:{port.getHost().port}"
    yield {"sim": sim, "base": base, "ca": ca,
           "client": (pem(client_cert).decode(), _pem_key(client_key).decode()),
           "stranger": (pem(stranger_cert).decode(), _pem_key(stranger_key).decode())}
    pytest_twisted.blockon(port.stopListening())


def _key(base: str, pair: tuple[str, str]) -> ServiceKey:
    return ServiceKey(clientid="sim-client", clientsecret="", url="https://auth.invalid", credential_type="x509",
                      certificate=pair[0], private_key=pair[1], certurl=base)


@pytest_twisted.ensureDeferred
async def test_x509_key_gets_its_token_over_mutual_tls(tls_token_endpoint: dict[str, Any]) -> None:
    endpoint = tls_token_endpoint
    key = _key(endpoint["base"], endpoint["client"])
    client = mtls_http_client(reactor, key, trust_root=endpoint["ca"])
    xsuaa = XsuaaClient(None, reactor, timeout=10, client_for=lambda k: client)  # type: ignore[arg-type]
    grant = await xsuaa.fetch(key)
    assert grant.access_token in endpoint["sim"].issued_tokens()
    (request,) = [r for r in endpoint["sim"].requests if r["path"] == "/oauth/token"]
    assert "authorization" not in request["headers"]
    assert request["body"] == {"grant_type": ["client_credentials"], "client_id": ["sim-client"]}


@pytest_twisted.ensureDeferred
async def test_a_certificate_the_endpoint_does_not_trust_gets_no_token(tls_token_endpoint: dict[str, Any]) -> None:
    endpoint = tls_token_endpoint
    key = _key(endpoint["base"], endpoint["stranger"])
    client = mtls_http_client(reactor, key, trust_root=endpoint["ca"])
    xsuaa = XsuaaClient(None, reactor, timeout=10, client_for=lambda k: client)  # type: ignore[arg-type]
    with pytest.raises(TokenFetchError) as caught:
        await xsuaa.fetch(key)
    assert "token endpoint unreachable" in str(caught.value)
    assert endpoint["sim"].stats.token_requests == 0


def test_a_broken_pem_pair_is_a_clear_error() -> None:
    key = ServiceKey(clientid="c", clientsecret="", url="https://a.example", credential_type="x509",
                     certificate="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                     private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                     certurl="https://a.example")
    with pytest.raises(ValueError, match="not a usable PEM pair"):
        mtls_http_client(reactor, key)


@pytest_twisted.ensureDeferred
async def test_sapproxy_admin_fetches_an_x509_token_too(tls_token_endpoint: dict[str, Any], tmp_path: Any,
                                                       monkeypatch: Any) -> None:
    from twisted.internet.threads import deferToThread

    from sapproxy.admin_sap import TenantError, fetch_token

    endpoint = tls_token_endpoint
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(endpoint["ca"].dumpPEM())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    token = await deferToThread(fetch_token, _key(endpoint["base"], endpoint["client"]), 10.0)
    assert token in endpoint["sim"].issued_tokens()
    with pytest.raises(TenantError):
        await deferToThread(fetch_token, _key(endpoint["base"], endpoint["stranger"]), 10.0)
