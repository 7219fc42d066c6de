"""
The inference call's client: exactly the request SAP AI Core expects, nothing treq would add.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
import treq
from treq.testing import RequestTraversalAgent
from twisted.internet.protocol import Protocol
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from sapproxy.upstreams.http import UpstreamClient, url_bytes
from sapproxy.upstreams.sap_aicore import upstream_headers


class Recorder(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def render_POST(self, request: Any) -> bytes:
        self.seen.append((request.uri, dict(request.requestHeaders.getAllRawHeaders()), request.content.read()))
        request.setHeader(b"content-type", b"application/json")
        return b'{"ok": true}'


def test_post_sends_the_body_and_headers_as_given() -> None:
    recorder = Recorder()
    agent = RequestTraversalAgent(recorder)
    headers = upstream_headers("tok-1", "rg-7", "zone-9", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    d = UpstreamClient(agent).post(b"http://sap.test/v2/inference/deployments/d1/chat/completions?api-version=1",
                                   headers, b'{"model":"x"}')
    responses: list[Any] = []
    d.addCallback(responses.append)
    agent.flush()
    (response,) = responses
    assert response.code == 200
    bodies: list[bytes] = []
    treq.content(response).addCallback(bodies.append)
    agent.flush()
    assert bodies == [b'{"ok": true}']
    ((uri, seen, content),) = recorder.seen
    assert uri == b"/v2/inference/deployments/d1/chat/completions?api-version=1"
    assert content == b'{"model":"x"}'
    assert seen[b"Authorization"] == [b"Bearer tok-1"]
    assert seen[b"Ai-Resource-Group"] == [b"rg-7"] and seen[b"Ai-Tenant-Id"] == [b"zone-9"]
    assert seen[b"Content-Type"] == [b"application/json"] and seen[b"Content-Length"] == [b"13"]
    assert seen[b"Traceparent"] == [b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"]
    # No cookie jar, no gzip negotiation: an upstream is never asked to compress a stream.
    assert b"Accept-Encoding" not in seen and b"Cookie" not in seen


def test_headers_without_tenant_or_trace() -> None:
    raw = dict(upstream_headers("t", "default", None).getAllRawHeaders())
    assert set(raw) == {b"Authorization", b"Ai-Resource-Group", b"Content-Type"}


def test_url_bytes() -> None:
    plain = "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com/v2/inference/deployments/d1/invoke"
    assert url_bytes(plain) == plain.encode()
    # What a config could hold and a request line cannot: encoded as treq would have.
    assert url_bytes("http://bücher.example/v2/a b") == b"http://xn--bcher-kva.example/v2/a%20b"


def test_one_endpoint_per_origin_for_every_request() -> None:
    """
    The pool's Agent asks for an endpoint on every request; the same origin must get the same one back
    (no IDNA work per request), and the connection it makes goes where the URL says.
    """
    from twisted.internet.endpoints import HostnameEndpoint
    from twisted.internet.testing import MemoryReactorClock
    from twisted.web.client import URI

    from sapproxy.upstreams.http import CachedEndpoints, make_http_client

    reactor = MemoryReactorClock()
    endpoints = CachedEndpoints(reactor, connect_timeout=7)
    a = endpoints.endpointForURI(URI.fromBytes(b"http://sap.test:8080/v2/a"))
    assert endpoints.endpointForURI(URI.fromBytes(b"http://sap.test:8080/v2/b?x=1")) is a
    assert endpoints.endpointForURI(URI.fromBytes(b"http://sap.test:8081/v2/a")) is not a
    tls = endpoints.endpointForURI(URI.fromBytes(b"https://sap.test/v2/a"))
    assert tls is not endpoints.endpointForURI(URI.fromBytes(b"http://sap.test/v2/a"))
    assert isinstance(a, HostnameEndpoint) and not isinstance(tls, HostnameEndpoint)  # https: wrapped in TLS

    clients = make_http_client(reactor, pool_size=4, connect_timeout=7)
    clients.upstream.post(b"http://127.0.0.1:3999/v2/inference/deployments/d1/chat/completions", Headers({}), b"{}")
    clients.upstream.post(b"http://127.0.0.1:3999/v2/inference/deployments/d2/chat/completions", Headers({}), b"{}")
    # Both requests connect (nothing pooled yet) to the URL's address, with the configured connect timeout.
    assert [(host, port, timeout) for host, port, _, timeout, _ in reactor.tcpClients] == \
        [("127.0.0.1", 3999, 7), ("127.0.0.1", 3999, 7)]


def test_unsupported_scheme_is_refused() -> None:
    from twisted.internet.testing import MemoryReactorClock
    from twisted.web.client import URI
    from twisted.web.error import SchemeNotSupported

    from sapproxy.upstreams.http import CachedEndpoints

    try:
        CachedEndpoints(MemoryReactorClock()).endpointForURI(URI.fromBytes(b"ftp://sap.test/x"))
    except SchemeNotSupported:
        pass
    else:
        raise AssertionError("ftp accepted")


class RawRecorder(Protocol):
    """A loopback upstream that keeps every request's bytes and answers each with a small JSON body."""

    def __init__(self, seen: list[bytes]) -> None:
        self.seen = seen
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if len(rest) < length:
                return
            self.seen.append(head + b"\r\n\r\n" + rest[:length])
            self.buffer = rest[length:]
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                                 b'{"ok":true}')


@pytest_twisted.ensureDeferred
async def test_pool_path_writes_what_twisted_would_and_reuses_the_connection() -> None:
    """
    In production the client goes to the pool itself (L{UpstreamClient} with the pool and endpoints): one
    request's bytes are the head Twisted's agent writes (request line, C{Host}, C{Content-Length}, the given
    headers) and the body, and the next request to the URL goes over the same kept-alive connection.
    """
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory

    from sapproxy.upstreams.http import make_http_client

    seen: list[bytes] = []
    connections: list[Any] = []

    class Upstream(Factory):
        def buildProtocol(self, addr: Any) -> Protocol:
            connections.append(addr)
            return RawRecorder(seen)

    port = reactor.listenTCP(0, Upstream(), interface="127.0.0.1")
    clients = make_http_client(reactor, pool_size=4, connect_timeout=5)
    number = port.getHost().port
    try:
        base = f"http://127.0.0.1:{number}".encode()
        for i in range(2):
            headers = upstream_headers(f"tok-{i}", "rg-7", None)
            response = await clients.upstream.post(base + b"/v2/inference/deployments/d1/chat/completions?v=1",
                                                   headers, b'{"model":"x"}')
            assert response.code == 200
            assert await treq.content(response) == b'{"ok":true}'
        # An upstream whose signature covers Host (Bedrock's SigV4) sends its own, and only that one.
        signed = Headers({b"host": [b"bedrock.test"], b"content-type": [b"application/json"]})
        response = await clients.upstream.post(base + b"/model/invoke", signed, b"{}")
        assert await treq.content(response) == b'{"ok":true}'
        # A body of megabytes is written after its head rather than joined to it: the same bytes on the wire.
        big = b'{"messages":"' + b"x" * 300_000 + b'"}'
        response = await clients.upstream.post(base + b"/big", upstream_headers("tok-big", "rg-7", None), big)
        assert await treq.content(response) == b'{"ok":true}'
    finally:
        await clients.pool.closeCachedConnections()
        await port.stopListening()
    assert len(connections) == 1, "one kept-alive connection for every request"
    host = b"127.0.0.1:%d" % number
    for i, raw in enumerate(seen[:2]):
        head, _, body = raw.partition(b"\r\n\r\n")
        line, *fields = head.split(b"\r\n")
        assert line == b"POST /v2/inference/deployments/d1/chat/completions?v=1 HTTP/1.1"
        assert sorted(fields) == sorted([b"Host: " + host, b"Content-Length: 13", b"Authorization: Bearer tok-%d" % i,
                                         b"Ai-Resource-Group: rg-7", b"Content-Type: application/json"])
        assert body == b'{"model":"x"}'
    head, _, body = seen[2].partition(b"\r\n\r\n")
    line, *fields = head.split(b"\r\n")
    assert line == b"POST /model/invoke HTTP/1.1" and body == b"{}"
    assert sorted(fields) == [b"Content-Length: 2", b"Content-Type: application/json", b"Host: bedrock.test"]
    head, _, body = seen[3].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /big HTTP/1.1\r\n") and b"\r\nContent-Length: %d\r\n" % len(big) in head
    assert body == big
