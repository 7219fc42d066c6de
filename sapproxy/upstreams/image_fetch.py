"""
Fetching the images a client names by URL, for upstreams that take only inline (base64) images.

OpenAI clients send C{image_url: {url: "https://..."}}, Anthropic clients C{source: {type: "url"}}; Claude
on Bedrock (InvokeModel and Converse) refuses both, so the gateway fetches the image and sends its bytes.
A gateway that fetches URLs chosen by its clients is a classic server-side request forgery: a client could
make it read the cloud metadata service (169.254.169.254), an admin port on localhost or a service on the
private network.  So, unless the configuration says otherwise (L{ImageFetchSettings}):

  - only C{https} URLs are fetched;
  - the host is resolved here, every address it resolves to must be a global one (no loopback, private,
    link-local, shared, multicast, reserved or unspecified address, IPv4-mapped IPv6 included), and the
    connection goes to that checked address (L{PinnedEndpoints}), so a second DNS answer cannot swap in
    another one; TLS still verifies the certificate against the host name;
  - redirects are followed by hand, at most C{max_redirects}, each new URL checked like the first;
  - the body may not exceed C{max_bytes} (the declared length is checked first, the bytes as they come),
    and the whole fetch, redirects included, must end within C{timeout} seconds;
  - the bytes must be a PNG, JPEG, GIF or WebP image (by their signature; the C{Content-Type} of arbitrary
    servers is not trusted).

Every refusal is an L{ImageRefused} whose message says which rule refused it; the caller answers 400.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin, urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from sapproxy.config import ImageFetchSettings

__all__ = ["FetchedImage", "ImageFetcher", "ImageRefused", "PinnedEndpoints", "address_allowed", "sniff_image"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: (host, port) -> addresses; resolves a host name, asynchronously.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class ImageRefused(Exception):
    """The image URL was not fetched, or what it gave is not an image; the message says why."""


@frozen
class FetchedImage:
    media_type: str
    data: bytes


def sniff_image(data: bytes) -> str | None:
    """The media type the bytes' signature says (PNG, JPEG, GIF, WebP), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def address_allowed(address: str) -> bool:
    """Whether C{address} is a global unicast address (see the module docstring)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@implementer(IAgentEndpointFactory)
class PinnedEndpoints:
    """
    Endpoints to the address the fetcher checked for each (host, port), never resolving anything itself: a
    host that was not pinned cannot be reached at all.
    """

    def __init__(self, reactor: Any, *, tls_policy: IPolicyForHTTPS | None = None, connect_timeout: float = 10.0) -> None:
        self._reactor = reactor
        self._tls = tls_policy if tls_policy is not None else BrowserLikePolicyForHTTPS()
        self._timeout = connect_timeout
        self._pins: dict[tuple[bytes, int], str] = {}

    def pin(self, host: str, port: int, address: str) -> None:
        self._pins[(host.encode("idna"), port)] = address

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        address = self._pins.get((uri.host, uri.port))
        if address is None:
            raise ImageRefused(f"{uri.host.decode('ascii', 'replace')} was not checked before connecting")
        endpoint: IStreamClientEndpoint
        if ":" in address:
            endpoint = TCP6ClientEndpoint(self._reactor, address, uri.port, timeout=self._timeout)
        else:
            endpoint = TCP4ClientEndpoint(self._reactor, address, uri.port, timeout=self._timeout)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


def system_resolver(reactor: Any) -> Resolver:
    """The system's resolver (C{getaddrinfo}) in the reactor's thread pool."""

    async def resolve(host: str, port: int) -> list[str]:
        infos = await deferToThreadPool(reactor, reactor.getThreadPool(), socket.getaddrinfo, host, port,
                                        type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]

    return resolve


class _CappedBody(Protocol):
    def __init__(self, limit: int, done: Deferred[bytes]) -> None:
        self._limit = limit
        self._done = done
        self._chunks: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()  # type: ignore[union-attr]
            self._done.errback(ImageRefused(f"the image is larger than {self._limit} bytes"))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._done.called:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._chunks))
        else:
            self._done.errback(ImageRefused("the connection broke while the image was read"))


class ImageFetcher:
    """
    Fetches image URLs by the rules of the module docstring.

    @param agent: the L{IAgent} requests go through; by default an agent over L{PinnedEndpoints} (tests
        pass a fake, with C{endpoints} to see what was pinned).
    @param resolve: host name to addresses; by default L{system_resolver}.
    """

    def __init__(self, reactor: Any, settings: ImageFetchSettings, *, agent: IAgent | None = None,
                 endpoints: PinnedEndpoints | None = None, resolve: Resolver | None = None) -> None:
        self._reactor = reactor
        self.settings = settings
        if agent is None:
            endpoints = endpoints or PinnedEndpoints(reactor, connect_timeout=settings.timeout)
            agent = Agent.usingEndpointFactory(reactor, endpoints, pool=HTTPConnectionPool(reactor, persistent=False))
        self._agent = agent
        self._endpoints = endpoints
        self._resolve = resolve or system_resolver(reactor)

    def fetch(self, url: str) -> Deferred[FetchedImage]:
        """
        The image at C{url}.  Fails with L{ImageRefused}.
        """
        d = ensureDeferred(self._fetch(url))
        timeout = self.settings.timeout

        def timed_out(result: Any, _: float) -> Any:
            if isinstance(result, Failure):
                raise ImageRefused(f"fetching the image took longer than {timeout:g} s")
            return result

        d.addTimeout(timeout, self._reactor, onTimeoutCancel=timed_out)
        return d

    async def _fetch(self, url: str) -> FetchedImage:
        for _ in range(self.settings.max_redirects + 1):
            await self._check(url)
            response = await self._agent.request(b"GET", url.encode("ascii"),
                                                 Headers({b"accept": [b"image/*"], b"user-agent": [b"sapproxy"]}))
            if response.code in _REDIRECTS:
                location = response.headers.getRawHeaders(b"location")
                _discard(response)
                if not location:
                    raise ImageRefused(f"the image URL answered HTTP {response.code} without a Location")
                url = urljoin(url, location[0].decode("latin-1"))
                continue
            if response.code != 200:
                _discard(response)
                raise ImageRefused(f"the image URL answered HTTP {response.code}")
            if response.length is not None and isinstance(response.length, int) and response.length > self.settings.max_bytes:
                _discard(response)
                raise ImageRefused(f"the image is larger than {self.settings.max_bytes} bytes")
            done: Deferred[bytes] = Deferred()
            response.deliverBody(_CappedBody(self.settings.max_bytes, done))
            data = await done
            media_type = sniff_image(data)
            if media_type is None:
                raise ImageRefused("the URL did not give a PNG, JPEG, GIF or WebP image")
            return FetchedImage(media_type, data)
        raise ImageRefused(f"the image URL redirected more than {self.settings.max_redirects} times")

    async def _check(self, url: str) -> None:
        """Refuse C{url} by scheme and by address; pin the checked address for the connection."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ImageRefused("the image URL is not a valid URL") from None
        schemes = ("https", "http") if self.settings.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise ImageRefused(f"only {' and '.join(schemes)} image URLs are fetched, not {parts.scheme or 'this'}")
        host = parts.hostname
        if not host:
            raise ImageRefused("the image URL names no host")
        try:
            url.encode("ascii")
            host.encode("idna")
        except (UnicodeError, ValueError):
            raise ImageRefused("the image URL must be ASCII (punycode for international host names)") from None
        port = port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                addresses = await self._resolve(host, port)
            except Exception:
                raise ImageRefused(f"the image host {host} could not be resolved") from None
        if not addresses:
            raise ImageRefused(f"the image host {host} could not be resolved")
        if not self.settings.allow_private_addresses:
            refused = [a for a in addresses if not address_allowed(a)]
            if refused:
                raise ImageRefused(f"the image host {host} resolves to a non-public address ({refused[0]})")
        if self._endpoints is not None:
            self._endpoints.pin(host, port, addresses[0])


def _discard(response: Any) -> None:
    """Drop a response's body (redirects, errors) without reading it."""
    done: Deferred[bytes] = Deferred()
    done.addErrback(lambda _: None)
    response.deliverBody(_CappedBody(0, done))
