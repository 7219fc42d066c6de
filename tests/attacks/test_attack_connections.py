"""
Attack: connections that hold descriptors (issue #15, items 3 and 10).

 - Slow-header connections (a byte every 10 s) were never closed: twisted.web's idle timer restarts on every
   byte.  Now the head and the body each have a deadline that trickling cannot extend.
 - When descriptors run short, the oldest incomplete connection is shed to make room; requests under way
   are never shed.
 - A chunked upload over the limit was read to its end (100 MB, 30 s) before its 413: now the 413 goes out
   as soon as the limit is crossed.  A 1 MB header closed the connection without an answer: now a 431.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from sapproxy.site import GatewaySite
from sapproxy.web.channel import connection_budget, raise_descriptor_limit


class Ok(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.content.read()
        return b"ok"


def site(**kw: Any) -> tuple[GatewaySite, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    s = GatewaySite(Ok(), max_body_bytes=kw.pop("max_body_bytes", 1000), reactor=reactor,
                    headers_deadline=kw.pop("headers_deadline", 60.0), body_deadline=kw.pop("body_deadline", 300.0),
                    **kw)
    return s, reactor


class Transport(StringTransport):
    """
    A socket's transport as TCP's is: unregistering no producer is harmless (StringTransport raises).
    """

    def unregisterProducer(self) -> None:
        self.producer = None


class Conn:
    def __init__(self, s: GatewaySite, reactor: MemoryReactorClock, host: str = "10.0.0.9") -> None:
        self.transport = Transport(peerAddress=IPv4Address("TCP", host, 4000))
        self.protocol = s.buildProtocol(IPv4Address("TCP", "10.0.0.9", 4000))
        self.protocol.makeConnection(self.transport)
        self.reactor = reactor

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    @property
    def out(self) -> bytes:
        return self.transport.value()

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def status(self) -> int:
        return int(self.out.split(b" ", 2)[1])


HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"


def test_trickled_headers_get_a_408_at_the_deadline() -> None:
    s, reactor = site()
    c = Conn(s, reactor)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\n")
    for i in range(5):  # one byte every 10 s: each would have restarted twisted.web's idle timer
        reactor.advance(10)
        c.send(b"X-Slow-%d: a\r\n" % i)
    assert not c.closed
    reactor.advance(10)
    assert c.closed and c.status() == 408
    assert b"did not arrive within 60 s" in c.out


def test_an_idle_connection_is_closed_quietly_and_a_complete_request_is_served() -> None:
    s, reactor = site()
    idle = Conn(s, reactor)
    busy = Conn(s, reactor)
    busy.send(HEAD + b"Content-Length: 2\r\n\r\n{}")
    assert busy.status() == 200
    reactor.advance(60)
    assert idle.closed and idle.out == b""
    assert busy.closed and busy.out.endswith(b"ok")  # its kept-alive idle time is the same deadline


def test_a_trickled_body_gets_a_408_at_its_deadline() -> None:
    s, reactor = site(body_deadline=30.0)
    c = Conn(s, reactor)
    c.send(HEAD + b"Content-Length: 100\r\n\r\n")
    for _ in range(5):
        reactor.advance(5)
        c.send(b"a")
    reactor.advance(5.1)
    assert c.closed and c.status() == 408 and b"body" in c.out


def test_deadlines_follow_each_kept_alive_request_with_one_timer() -> None:
    s, reactor = site(headers_deadline=60.0, body_deadline=30.0)
    timers = []
    call_later = reactor.callLater
    reactor.callLater = lambda *a, **kw: timers.append(a[0]) or call_later(*a, **kw)  # type: ignore[method-assign]
    c = Conn(s, reactor)
    for _ in range(3):  # each request 50 s after the last: the head deadline counts from the last response
        reactor.advance(50)
        c.send(HEAD + b"Content-Length: 2\r\n\r\n{}")
        assert not c.closed and c.out.endswith(b"ok")
        c.transport.clear()
    # The timer is not set again per phase and request: it is moved when it fires (every 60 s at most here).
    assert len(timers) <= 3, timers
    reactor.advance(59.9)
    assert not c.closed
    reactor.advance(0.1)
    assert c.closed and c.out == b""  # idle since its last response: closed quietly, exactly at the deadline


def test_a_body_deadline_sooner_than_the_head_one_still_holds() -> None:
    s, reactor = site(headers_deadline=60.0, body_deadline=5.0)
    c = Conn(s, reactor)
    c.send(HEAD + b"Content-Length: 10\r\n\r\n")
    reactor.advance(4.9)
    c.send(b"a")
    assert not c.closed
    reactor.advance(0.1)
    assert c.closed and c.status() == 408 and b"body did not arrive within 5 s" in c.out


def test_a_closed_connection_leaves_no_timer() -> None:
    s, reactor = site()
    c = Conn(s, reactor)
    c.send(HEAD + b"Content-Length: 2\r\n\r\n{}")
    c.protocol.connectionLost(None)
    assert reactor.getDelayedCalls() == []


def test_oversized_header_line_and_head_get_a_431() -> None:
    s, reactor = site()
    c = Conn(s, reactor)
    c.send(HEAD + b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    assert c.closed and c.status() == 431
    c = Conn(s, reactor)
    c.send(HEAD + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(80)) + b"\r\n")
    assert c.closed and c.status() == 431
    assert json.loads(c.out.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "invalid_request_error"


def test_chunked_upload_over_the_limit_is_answered_when_it_crosses_it() -> None:
    s, reactor = site(max_body_bytes=1000)
    c = Conn(s, reactor)
    c.send(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    c.send(b"200\r\n" + b"a" * 512 + b"\r\n")
    assert c.out == b""
    c.send(b"200\r\n" + b"a" * 512 + b"\r\n")  # 1,024 bytes: over
    assert c.closed and c.status() == 413
    assert b"exceeds the limit of 1000 bytes" in c.out
    before = c.out
    c.send(b"200\r\n" + b"a" * 512 + b"\r\n" + b"0\r\n\r\n")  # what follows is not read, nor answered again
    assert c.out == before


def test_incomplete_connections_are_shed_first_when_descriptors_run_short() -> None:
    from sapproxy.metrics import GatewayMetrics

    s, reactor = site(max_connections=3)
    s.metrics = GatewayMetrics()
    slow = [Conn(s, reactor) for _ in range(2)]
    for c in slow:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\n")
    working = Conn(s, reactor)
    working.send(HEAD + b"Content-Length: 2\r\n\r\n{}")
    assert working.status() == 200
    # The site is at its budget: each newcomer displaces the oldest incomplete connection.
    newcomer = Conn(s, reactor)
    assert slow[0].closed and not slow[1].closed
    newcomer.send(HEAD + b"Content-Length: 2\r\n\r\n{}")
    assert newcomer.status() == 200
    assert s.shed == 1
    # Operators see the flood on /metrics, not only in the log.
    assert b"sapproxy_connections_shed_total 1.0" in s.metrics.render()[0]


def test_the_descriptor_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    soft, _ = raise_descriptor_limit()
    now_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == now_soft and (hard == resource.RLIM_INFINITY or now_soft == hard)
    assert connection_budget(1024) == 480


def test_an_unhandled_error_is_json_in_the_dialect_never_an_html_page() -> None:
    """
    /health once answered an HTML 500 until restart; whatever a route fails with, the answer is JSON.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spine"))
    from app_harness import Harness

    from sapproxy.web.app import build_app
    from sapproxy.web.frame import ServicesRef

    h = Harness()

    class Broken:
        names: list[str] = []

        def recent(self) -> dict[str, str]:
            raise RuntimeError("a bug")

        def resolve(self, name: str) -> None:
            return None

    import attrs

    services = attrs.evolve(h.services, catalog=Broken())
    reactor = MemoryReactorClock()
    s = GatewaySite(build_app(ServicesRef(services)).resource(), max_body_bytes=1000, reactor=reactor)
    for path, kind in ((b"/health", "openai"), (b"/v1/messages/x", "anthropic")):
        c = Conn(s, reactor, host="127.0.0.1")
        c.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = c.out.partition(b"\r\n\r\n")
        assert b"text/html" not in head.lower(), c.out
        if path == b"/health":
            assert head.startswith(b"HTTP/1.1 500") and json.loads(body)["error"]["type"] == "api_error"
