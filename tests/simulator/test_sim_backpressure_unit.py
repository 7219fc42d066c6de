"""The stream producer alone: it stops pulling events while paused and when the client goes."""

from __future__ import annotations

from collections.abc import Iterator

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from sapproxy.simulator.streaming import EventStream


def _request() -> Request:
    return Request(DummyChannel(), False)


def test_sim_paused_producer_pulls_nothing() -> None:
    pulled: list[int] = []

    def events() -> Iterator[bytes]:
        for i in range(1_000_000):
            pulled.append(i)
            yield b"data: %d\n\n" % i

    request = _request()
    clock = Clock()
    stream = EventStream(request, clock, events(), delay=0.0)
    # The transport is full before we start: the first write pauses us.
    writes: list[bytes] = []

    def write(data: bytes) -> None:
        writes.append(data)
        if len(writes) % 5 == 0:
            stream.pauseProducing()

    request.write = write  # type: ignore[method-assign]
    done = stream.start()
    assert len(writes) == 5 and len(pulled) == 5
    clock.advance(100)
    assert len(pulled) == 5  # paused: nothing generated, nothing buffered
    stream.resumeProducing()
    clock.advance(0)
    assert len(writes) == 10
    stream.stopProducing()
    clock.advance(100)
    stream.resumeProducing()
    clock.advance(0)
    assert len(writes) == 10
    failures: list[object] = []
    done.addErrback(lambda f: failures.append(f.check(CancelledError)))
    done.cancel()
    assert failures == [CancelledError]


def test_sim_delay_uses_clock_and_finish_fires_done() -> None:
    clock = Clock()
    request = _request()
    writes: list[bytes] = []
    request.write = writes.append  # type: ignore[method-assign]
    closed: list[bool] = []
    stream = EventStream(request, clock, iter([b"a", b"b", b"c"]), delay=1.0, on_close=lambda: closed.append(True))
    done = stream.start()
    assert writes == [b"a"]
    clock.advance(1.0)
    assert writes == [b"a", b"b"]
    clock.advance(1.0)
    clock.advance(1.0)
    assert writes == [b"a", b"b", b"c"]
    results: list[bytes] = []
    done.addCallback(results.append)
    assert results == [b""] and closed == [True]


def test_sim_cancel_stops_a_delayed_stream() -> None:
    clock = Clock()
    request = _request()
    writes: list[bytes] = []
    request.write = writes.append  # type: ignore[method-assign]
    stream = EventStream(request, clock, iter([b"a", b"b", b"c"]), delay=1.0)
    done = stream.start()
    done.addErrback(lambda f: None)
    done.cancel()  # what Klein does when the client hangs up
    clock.advance(10)
    assert writes == [b"a"]
    assert not clock.getDelayedCalls()
