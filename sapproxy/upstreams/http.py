"""
The one HTTP connection pool every upstream call goes through, and the client for the hot call.

One persistent L{HTTPConnectionPool} shared by all requests, sized for thousands of concurrent streams
(C{maxPersistentPerHost} caps the idle connections kept, not concurrency: too low, and every extra
connection is closed when its stream ends).  No redirects (an inference call that redirects is a
misconfiguration to see, not to follow).

Token fetches and other occasional calls use treq over that pool.  The inference call itself, made once per
client request, goes through L{UpstreamClient}: the same pool's L{Agent}, but with the URL and headers
already in bytes and a body producer that writes at once.  treq's per-request layers are each worth having
for a general client and none is for this call: re-normalising the URL through hyperlink and idna, a cookie
jar (SAP AI Core sets no cookies), redirect following (off) and a gzip decoder (which also asked upstreams to
compress every stream); together they cost more CPU per request than the rest of the gateway's own work
(see the issue note on performance, profiled with bench/run.py --profile).
"""

from __future__ import annotations

from typing import Any, Mapping

from attrs import field, frozen
from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IConsumer, IReactorTime, IStreamClientEndpoint
from twisted.internet.tcp import Connection
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from sapproxy.compat import (
    HTTP11ClientFactory, HTTP11ClientProtocol, HTTP11Request, install_pool_factory, use_transfer_decoders,
)
from sapproxy.upstreams.chunked import TRANSFER_DECODERS
from sapproxy.upstreams.proxying import TunnelEndpoint, proxy_for


class _CycleFreeClientProtocol(HTTP11ClientProtocol):
    """
    Twisted's HTTP/1.1 client protocol, leaving no reference cycle behind a finished response.

    The response parser keeps its body decoder after the body ends, and the decoder holds the parser's own
    C{_finished} method: a cycle that only the garbage collector can free, and through the parser it holds
    the response, the request with its body, the relay and the connection.  A stream outlives several young
    collections, so all of that reached the oldest generation and stayed there until a full collection: 118
    objects a finished slow stream (with this and the request's own release in L{sapproxy.service}, 45),
    and RSS that grew from one wave of thousands of streams to the next.  Once the parser is disconnected the
    decoder is never used again, so it is dropped.
    """

    def _disconnectParser(self, reason: Failure) -> None:
        parser = self._parser
        super()._disconnectParser(reason)
        if parser is not None:
            parser.bodyDecoder = None

    def request(self, request: Any) -> Deferred[IResponse]:
        # Chunked bodies (every stream) through the decoder that cuts whole chunks out of a read in one loop.
        result = super().request(request)
        use_transfer_decoders(self, request, TRANSFER_DECODERS)
        return result


class _QuietFactory(HTTP11ClientFactory):
    # One log line per upstream connection is noise at thousands of streams.
    noisy = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        return _CycleFreeClientProtocol(self._quiescentCallback)


@implementer(IAgentEndpointFactory)
class CachedEndpoints:
    """
    One endpoint per upstream origin, made on first use and reused for every request after it.

    L{Agent} asks its endpoint factory for an endpoint on every request, even one that is then served by a
    pooled connection, and Twisted's standard factory builds a new L{HostnameEndpoint} each time, which runs
    the host through IDNA (four label checks per request; about 7 % of a proxied request's CPU in the
    profile).  The upstream origins come from the config, so this cache is bounded by it.  The endpoints are
    what the standard factory makes: TCP for C{http}, TLS (the given policy) for C{https}.
    """

    def __init__(self, reactor: Any, *, connect_timeout: float = 30.0,
                 tls_policy: IPolicyForHTTPS | None = None, environ: Mapping[str, str] | None = None) -> None:
        """
        @param environ: where C{HTTPS_PROXY}, C{HTTP_PROXY} and C{NO_PROXY} are read (the process environment
            in the daemon): a proxied origin is reached through a C{CONNECT} tunnel.
        """
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._tls = tls_policy if tls_policy is not None else BrowserLikePolicyForHTTPS()
        self._environ = environ
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = self._make(uri)
        return endpoint

    def _make(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        try:
            host = uri.host.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"the upstream host {uri.host!r} is not ASCII") from None
        endpoint: IStreamClientEndpoint
        proxy = proxy_for(uri.scheme.decode("ascii"), host, uri.port, self._environ) if self._environ else None
        if proxy is not None:
            endpoint = TunnelEndpoint(self._direct(proxy.host, proxy.port), proxy, host, uri.port)
        else:
            endpoint = self._direct(host, uri.port)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint

    def _direct(self, host: str, port: int) -> IStreamClientEndpoint:
        timeout = self._connect_timeout
        endpoint: IStreamClientEndpoint
        if isIPAddress(host):
            # An address needs no resolution (HostnameEndpoint would still hand it to a resolver thread).
            endpoint = TCP4ClientEndpoint(self._reactor, host, port, timeout=timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, port, timeout=timeout)
        else:
            endpoint = HostnameEndpoint(self._reactor, host, port, timeout=timeout)
        return endpoint


@frozen
class HttpClients:
    """
    The two faces of the one pool: treq for occasional calls, L{UpstreamClient} for inference calls.
    """

    http: HTTPClient
    upstream: UpstreamClient
    pool: HTTPConnectionPool


def make_http_client(reactor: Any, *, pool_size: int, connect_timeout: float,
                     idle_connection_timeout: int = 100, environ: Mapping[str, str] | None = None) -> HttpClients:
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = pool_size
    # Below the usual upstream keep-alive, so we drop a cached connection before the server does.
    pool.cachedConnectionTimeout = int(idle_connection_timeout)
    pool.retryAutomatically = False
    install_pool_factory(pool, _QuietFactory)
    endpoints = CachedEndpoints(reactor, connect_timeout=connect_timeout, environ=environ)
    agent = Agent.usingEndpointFactory(reactor, endpoints, pool=pool)
    return HttpClients(HTTPClient(agent), UpstreamClient(agent, pool, endpoints), pool)


@implementer(IBodyProducer)
class BytesProducer:
    """
    A request body already in memory, written in one go when the connection asks for it.

    (treq wraps bytes in a L{FileBodyProducer}, which hands them over from a cooperator task: one more
    reactor turn before the upstream sees the request.)

    @ivar unsent: the bytes not yet written (empty once they have been).
    """

    __slots__ = ("unsent", "length")

    def __init__(self, body: bytes) -> None:
        self.unsent = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        # Written once and never again (each attempt has a producer of its own): let go of the body, which
        # can be megabytes of conversation, instead of keeping it for as long as the response is referenced.
        body, self.unsent = self.unsent, b""
        consumer.write(body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Origin:
    """
    What every request to one URL shares, worked out on its first request: the pool key and endpoint, the
    request target, and the head of the request up to its headers (request line, C{Host}).
    """

    __slots__ = ("key", "endpoint", "uri", "path", "head", "host_line")

    def __init__(self, url: bytes, endpoints: IAgentEndpointFactory, persistent: bool) -> None:
        uri = URI.fromBytes(url)
        # Twisted's own checks of the method and request target, once per URL instead of once per request.
        HTTP11Request(b"POST", uri.originForm, Headers(), None)
        self.key = (uri.scheme, uri.host, uri.port)
        self.endpoint = endpoints.endpointForURI(uri)
        self.uri = uri
        self.path = uri.originForm
        host = b"[" + uri.host + b"]" if isIPv6Address(uri.host.decode("ascii", "replace")) else uri.host
        if (uri.scheme, uri.port) not in ((b"http", 80), (b"https", 443)):
            host = b"%b:%d" % (host, uri.port)
        self.head = b"POST " + self.path + b" HTTP/1.1\r\n" + (b"" if persistent else b"Connection: close\r\n")
        self.host_line = b"Host: " + host + b"\r\n"


class _WholeRequest(HTTP11Request):
    """
    A POST whose body is in memory, written with its head in one piece.

    Twisted's request writes the head, then hands the body to a producer through a length-enforcing consumer,
    with three Deferreds and a producer registration to say when it is done: machinery for bodies that
    arrive over time, one of the larger costs of an inference call.  This request writes what Twisted's
    would (the same head, C{Content-Length}, the body) and is done at once.
    """

    def __init__(self, origin: _Origin, headers: Headers, body: bytes, persistent: bool) -> None:
        # Not Twisted's __init__: the method and target were checked when the origin was made.
        self.method = b"POST"
        self.uri = origin.path
        self.headers = headers
        self.bodyProducer = None
        self.persistent = persistent
        self._parsedURI = origin.uri
        self._origin = origin
        self._body = body

    def writeTo(self, transport: Any) -> Deferred[None]:
        origin = self._origin
        body, self._body = self._body, b""  # written once: let go of it (it can be megabytes)
        headers = self.headers
        lines = [origin.head]
        if not headers.hasHeader(b"host"):
            lines.append(origin.host_line)
        lines.append(b"Content-Length: %d\r\n" % len(body))
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        if len(body) < _JOIN_BELOW:
            lines.append(body)
            transport.write(b"".join(lines))
        else:
            # A body of megabytes (a long conversation) is handed over as it is, not copied once more.
            transport.write(b"".join(lines))
            transport.write(body)
        send_now(transport)
        return succeed(None)


def send_now(transport: Any) -> None:
    """
    Send what C{transport} holds now rather than on the reactor's next turn, on a plain TCP connection that
    is open: the upstream starts on the request while the gateway handles the rest of this turn's events.
    Left to the reactor, every request read in one turn went upstream together at its end, and came back
    together: under load the gateway sat idle while the upstream worked through the batch (a tenth of its
    core at 16 connections, bench/run.py).  A failed send is left for the reactor's own write, which meets
    the same error and handles it; a TLS connection is left to the reactor (its bytes are not the socket's).
    """
    if isinstance(transport, Connection) and transport.connected and not transport.disconnecting:
        transport.doWrite()

    def stopWriting(self) -> None:
        pass  # everything was written by writeTo


@frozen
class UpstreamClient:
    """
    POSTs to deployments through an L{IAgent} (in tests treq's C{RequestTraversalAgent}), answering with the
    plain L{IResponse}, body unread.

    Given the pool and the endpoints the agent uses (as in production), it goes to the pool itself: the
    agent's work per request (parse the URL, look up the endpoint, copy the headers to add C{Host}, check the
    method and target) is done once per URL, and the request is a L{_WholeRequest}.  The URLs are the
    configured deployments' (the providers keep them), so the cache of origins is bounded by the config; a
    hostile number of them is cut off at L{_MAX_ORIGINS}.
    """

    agent: IAgent
    pool: HTTPConnectionPool | None = None
    endpoints: IAgentEndpointFactory | None = None
    _origins: dict[bytes, _Origin] = field(factory=dict, eq=False, repr=False)

    def post(self, url: bytes, headers: Headers, body: bytes) -> Deferred[IResponse]:
        pool = self.pool
        if pool is None or self.endpoints is None:
            return self.agent.request(b"POST", url, headers, BytesProducer(body))
        origin = self._origins.get(url)
        if origin is None:
            try:
                origin = _Origin(url.strip(), self.endpoints, pool.persistent)
            except SchemeNotSupported:
                return fail()
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            self._origins[url] = origin
        request = _WholeRequest(origin, headers, body, pool.persistent)
        return pool.getConnection(origin.key, origin.endpoint).addCallback(_send, request)


#: Bodies below this size are written in one piece with their head; larger ones after it, uncopied.
_JOIN_BELOW = 64 * 1024

#: More distinct upstream URLs than any config has; past it the cache starts again.
_MAX_ORIGINS = 4096


def _send(protocol: HTTP11ClientProtocol, request: _WholeRequest) -> Deferred[IResponse]:
    return protocol.request(request)


def url_bytes(url: str) -> bytes:
    """
    A configured deployment URL plus an exchange's path, as the bytes of a request line.

    They are ASCII in practice (hosts, deployment ids, model names, API versions): taken as they are; anything
    else is encoded as treq would (IDNA host, percent-encoded path).
    """
    if url.isascii() and url.isprintable() and " " not in url:
        return url.encode("ascii")
    return EncodedURL.from_text(url).to_uri().to_text().encode("ascii")


def sleep(clock: IReactorTime, seconds: float) -> Any:
    from twisted.internet.task import deferLater

    return deferLater(clock, seconds, lambda: None)


def with_headers(headers: Headers, extra: tuple[tuple[bytes, bytes], ...]) -> Headers:
    """
    C{headers} plus a wire format's own C{extra}; a value joins one already there, comma-separated (how list
    headers such as C{anthropic-beta} combine).
    """
    for name, value in extra:
        present = headers.getRawHeaders(name)
        if not present:
            headers.setRawHeaders(name, [value])
            continue
        have = [v.strip() for v in b",".join(present).split(b",") if v.strip()]
        have += [v.strip() for v in value.split(b",") if v.strip() and v.strip() not in have]
        headers.setRawHeaders(name, [b",".join(have)])
    return headers
