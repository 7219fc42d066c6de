"""
Attack: clients that hold resources (issue #15, items 13 and 10).

 - A client that never reads its stream held the stream and its upstream connection for ever (the idle
   timer is disarmed under backpressure).  Now a write-stall timeout disconnects it and closes the upstream.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spine"))

from test_spine_relay import FakeRequest, FakeUpstream, chunk, feed  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from sapproxy.dispatch.relay import StreamRelay  # noqa: E402
from sapproxy.translate.client.openai_chat import CLIENT_API as OPENAI_STREAM  # noqa: E402
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline  # noqa: E402
from sapproxy.translate.framing.sse import encode_data  # noqa: E402
from sapproxy.translate.wire.openai_passthrough import OpenAIPassthrough  # noqa: E402


class Channel:
    def __init__(self) -> None:
        self.transport = self
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


def relay(stall: float) -> tuple[StreamRelay, Any, FakeUpstream, Clock]:
    request, upstream, clock = FakeRequest(), FakeUpstream(), Clock()
    request.channel = Channel()  # type: ignore[attr-defined]
    pipeline = StreamPipeline(SSEJsonSource(), [OpenAIPassthrough("gpt", client_wants_usage=False)], encode_data)
    r = StreamRelay(request, pipeline, OPENAI_STREAM, clock, idle_timeout=60, keepalive=15,
                    on_first_write=lambda: None, write_stall=stall)
    r.makeConnection(upstream)  # type: ignore[arg-type]
    return r, request, upstream, clock


def test_a_client_that_never_reads_is_disconnected_and_the_upstream_closed() -> None:
    r, request, upstream, clock = relay(stall=120)
    feed(r, clock, chunk("a"))
    r.pauseProducing()  # the client's socket is full
    assert upstream.state == "paused"
    clock.advance(119)
    assert not r.done.called and not request.channel.aborted
    clock.advance(1)
    assert request.channel.aborted and upstream.state == "stopped"
    assert r.done.called and r.outcome.client_hung_up


def test_a_slow_reader_that_keeps_reading_is_not_cut() -> None:
    r, request, upstream, clock = relay(stall=120)
    for i in range(10):
        feed(r, clock, chunk(str(i)))
        r.pauseProducing()
        clock.advance(100)  # slow, but it takes data before the stall timeout each time
        r.resumeProducing()
    assert not request.channel.aborted and not r.done.called
    assert upstream.state == "producing"
