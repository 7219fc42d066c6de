"""
The gateway's own SAP credentials: whether a subaccount's service key works, and what to do when it does not.

When SAP refuses the gateway's credentials (a wrong client secret, a deleted key, an expired certificate) the
fault is the operator's, not the client's: the client must get a 502 that names the subaccount, never a 401
(Claude Code would tell its user that *their* key is wrong).  A refused subaccount backs off, so a burst of
requests does not become a burst of token fetches, and C{/health} reports it.

Also the mutual-TLS client for X.509 service keys (C{credential-type: x509}): their token endpoint
(C{certurl}) authenticates the client by its certificate instead of a secret.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from attrs import define
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sapproxy.config import ServiceKey

log = Logger()

#: The statuses with which a token endpoint refuses the credentials themselves (retrying will not help).
REJECTING = (400, 401, 403)


def is_rejection(status: int) -> bool:
    return status in REJECTING


@define
class CredentialGuard:
    """
    The credential health of one subaccount, with backoff.

    After a failure, L{refusal} answers at once (no fetch) until the backoff has passed: C{base} seconds after
    the first failure, doubling to C{cap}; a refusal of the credentials themselves starts at C{rejected_base}.
    A success resets it.
    """

    clock: IReactorTime
    base: float = 1.0
    rejected_base: float = 15.0
    cap: float = 300.0
    failures: int = 0
    rejected: bool = False
    reason: str | None = None
    until: float = 0.0
    #: How many times the credentials were refused (token endpoint 401/403, or a fresh token refused).
    rejections: int = 0

    def refusal(self) -> str | None:
        """
        The reason to fail a token request now without fetching, or C{None} to go ahead and fetch.
        """
        if self.failures and self.clock.seconds() < self.until:
            return self.reason
        return None

    def succeeded(self) -> None:
        if self.rejected:
            log.info("SAP credentials work again")
        self.failures = 0
        self.rejected = False
        self.reason = None
        self.until = 0.0

    def failed(self, reason: str, *, rejected: bool) -> None:
        self.failures += 1
        self.rejected = rejected
        self.reason = reason
        if rejected:
            self.rejections += 1
        first = self.rejected_base if rejected else self.base
        delay = min(first * 2 ** (self.failures - 1), self.cap)
        # A little jitter so several gateway processes do not retry in step.
        self.until = self.clock.seconds() + delay * random.uniform(0.9, 1.1)

    @property
    def failing(self) -> bool:
        """
        Whether the subaccount cannot get tokens now (in backoff after a failure).
        """
        return self.failures > 0 and (self.rejected or self.clock.seconds() < self.until)

    def state(self) -> dict[str, Any]:
        now = self.clock.seconds()
        return {
            "credentials": ("rejected" if self.rejected else "failing" if self.failing else
                            "unknown" if self.failures else "ok"),
            "retry_in": round(self.until - now, 1) if self.failures and self.until > now else None,
        }


def token_request(key: ServiceKey) -> tuple[dict[str, str], bytes]:
    """
    The headers and form body of a client-credentials token request: HTTP Basic with the secret, or (X.509)
    only the client id in the form, the certificate doing the authenticating.
    """
    import base64
    from urllib.parse import urlencode

    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    if key.x509:
        return headers, urlencode({"grant_type": "client_credentials", "client_id": key.clientid}).encode()
    basic = base64.b64encode(f"{key.clientid}:{key.clientsecret}".encode()).decode("ascii")
    headers["Authorization"] = f"Basic {basic}"
    return headers, b"grant_type=client_credentials"


def mtls_http_client(reactor: Any, key: ServiceKey, *, trust_root: Any = None, connect_timeout: float = 10.0,
                     environ: Mapping[str, str] | None = None) -> Any:
    """
    A treq client that presents C{key}'s certificate to every TLS server it talks to (the C{certurl}).

    @param trust_root: the CAs to trust (an L{twisted.internet.ssl.Certificate} or C{IOpenSSLTrustRoot});
        the platform's by default.
    @raise ValueError: the certificate or key is not a usable PEM pair.
    """
    from treq.client import HTTPClient
    from twisted.internet import ssl
    from twisted.web.client import Agent, HTTPConnectionPool
    from twisted.web.iweb import IPolicyForHTTPS
    from zope.interface import implementer

    assert key.certificate and key.private_key
    try:
        client_cert = ssl.PrivateCertificate.loadPEM(
            (key.certificate.strip() + "\n" + key.private_key.strip() + "\n").encode("ascii"))
    except Exception as e:
        raise ValueError(f"the service key's certificate and key are not a usable PEM pair: {e}") from None

    @implementer(IPolicyForHTTPS)
    class ClientCertPolicy:
        def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
            return ssl.optionsForClientTLS(hostname.decode("ascii"), trustRoot=trust_root,
                                           clientCertificate=client_cert)

    from sapproxy.upstreams.http import CachedEndpoints

    pool = HTTPConnectionPool(reactor, persistent=True)
    endpoints = CachedEndpoints(reactor, connect_timeout=connect_timeout, tls_policy=ClientCertPolicy(),
                                environ=environ)
    return HTTPClient(Agent.usingEndpointFactory(reactor, endpoints, pool=pool))


def mtls_clients(reactor: Any, config: Any) -> Any:
    """
    C{client_for} for L{sapproxy.upstreams.sap_aicore.XsuaaClient}: one mTLS client per X.509 key (made when
    first needed), C{None} for a key with a secret (the shared client serves it).
    """
    import os

    clients: dict[tuple[str, str], Any] = {}

    def client_for(key: ServiceKey) -> Any:
        if not key.x509:
            return None
        ident = (key.clientid, key.certificate or "")
        if ident not in clients:
            clients[ident] = mtls_http_client(reactor, key, connect_timeout=config.timeouts.connect,
                                              trust_root=_trust_root_from_env(), environ=os.environ)
        return clients[ident]

    return client_for


def _trust_root_from_env() -> Any:
    """
    The CAs that certify the token endpoint: C{SSL_CERT_FILE} (a PEM bundle) when set, else the platform's.
    """
    import os

    path = os.environ.get("SSL_CERT_FILE")
    if not path:
        return None
    from twisted.internet import ssl

    with open(path, encoding="ascii") as f:
        text = f.read()
    blocks = [b + "-----END CERTIFICATE-----\n" for b in text.split("-----END CERTIFICATE-----") if "BEGIN" in b]
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM((b.strip() + "\n").encode("ascii")) for b in blocks])


def check_service_key(name: str, tokens: Any) -> None:
    """
    At start: fetch a token for subaccount C{name} and log whether its service key works.  Nothing waits for
    this; a key that fails is logged (and shown in C{/health}) and the gateway starts anyway.
    """
    def ok(_: object) -> None:
        log.info("subaccount {name}: service key works (token from {url})", name=name,
                 url=tokens.key.token_url.split("?", 1)[0])

    def failed(failure: Any) -> None:
        log.error("subaccount {name}: service key does NOT work: {error}; the gateway serves without it and "
                  "retries", name=name, error=str(failure.value))

    tokens.get().addCallbacks(ok, failed)
