"""
What a finished request leaves for the garbage collector, and the idle-time collection that frees it.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web._newclient import HTTPClientParser, Request
from twisted.web.http_headers import Headers

from sapproxy.memory import IdleCollector, malloc_trim
from sapproxy.upstreams.http import BytesProducer, _QuietFactory


def _garbage_after(run: Any) -> list[Any]:
    """The objects only the cyclic collector could free after C{run()} and its references are gone."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _one_response() -> None:
    protocol = _QuietFactory(lambda _: None, None).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    producer = BytesProducer(b'{"model":"gpt-4.1"}')
    responses: list[Any] = []
    protocol.request(Request(b"POST", b"/chat", Headers({b"host": [b"sap.test"]}), producer)).addCallback(
        responses.append)
    assert producer.length == 19 and b'{"model":"gpt-4.1"}' in transport.value()
    assert producer.unsent == b"", "the body is let go of once written"
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    (response,) = responses
    body: list[bytes] = []

    class Collect:
        def makeConnection(self, _: Any) -> None:
            pass

        def dataReceived(self, data: bytes) -> None:
            body.append(data)

        def connectionLost(self, _: Any) -> None:
            body.append(b"<end>")

    response.deliverBody(Collect())
    protocol.dataReceived(b"5\r\nhello\r\n0\r\n\r\n")
    assert body == [b"hello", b"<end>"]
    protocol.connectionLost(None)


def test_a_finished_upstream_response_leaves_no_cycle() -> None:
    garbage = _garbage_after(_one_response)
    assert not [o for o in garbage if isinstance(o, HTTPClientParser)], "the parser is freed by reference counting"


def test_idle_collector_collects_only_when_idle_after_enough_work() -> None:
    clock = Clock()
    state = {"inflight": 0, "finished": 0}
    calls: list[str] = []
    collector = IdleCollector(clock, lambda: state["inflight"], lambda: state["finished"], interval=2,
                              min_finished=100, collect=lambda: calls.append("collect"),
                              trim=lambda: calls.append("trim"))
    collector.startService()
    state["finished"] = 99
    clock.advance(2)
    assert calls == []  # too little work since the start to be worth a pause
    state["finished"], state["inflight"] = 500, 3
    clock.advance(2)
    assert calls == []  # requests in flight: never pause them
    state["inflight"] = 0
    clock.advance(2)
    assert calls == ["collect", "trim"] and collector.collections == 1
    clock.advance(2)
    assert calls == ["collect", "trim"]  # nothing finished since
    collector.stopService()
    state["finished"] = 10_000
    clock.advance(10)
    assert collector.collections == 1


def test_malloc_trim_runs_here() -> None:
    trim = malloc_trim()
    assert trim is not None, "this machine's C library has malloc_trim (glibc)"
    trim()


def test_a_finished_request_lets_go_of_its_connection() -> None:
    """
    Klein keeps every request in a reference cycle; once it is finished, the request drops its connection
    (and Klein's component), so the cycle holds a small shell rather than the transport and its buffers.
    """
    from twisted.internet.testing import MemoryReactorClock
    from twisted.web.resource import Resource
    from twisted.web.test.requesthelper import DummyChannel

    from sapproxy.site import GatewaySite, TrackingRequest

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return b"hi"

    reactor = MemoryReactorClock()
    site = GatewaySite(Hello(), max_body_bytes=1000, reactor=reactor)
    channel = DummyChannel()
    channel.site = site
    request = TrackingRequest(channel)
    request.method, request.uri, request.path, request.clientproto = b"GET", b"/", b"/", b"HTTP/1.1"
    request.process()
    assert request.finished and not site.inflight and site.finished == 1
    assert request.transport is None and request._adapterCache == {}
