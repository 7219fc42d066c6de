"""
StreamRelay: the client's pace reaches the upstream transport, a hang-up closes the upstream, silence ends
the stream with an error event, keep-alives flow during silence, and a break before the first byte can be
retried.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from sapproxy.dispatch.relay import FailedBeforeFirstByte, StreamRelay
from sapproxy.translate.client.anthropic_messages import CLIENT_API as ANTHROPIC_STREAM
from sapproxy.translate.client.openai_chat import CLIENT_API as OPENAI_STREAM
from sapproxy.translate.wire.openai_passthrough import OpenAIPassthrough
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline
from sapproxy.translate.framing.sse import encode_data, encode_event


class FakeRequest:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.producer: Any = None
        self.committed = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class FakeUpstream:
    """The upstream response's TransportProxyProducer."""

    def __init__(self) -> None:
        self.state = "producing"

    def pauseProducing(self) -> None:
        self.state = "paused"

    def resumeProducing(self) -> None:
        self.state = "producing"

    def stopProducing(self) -> None:
        self.state = "stopped"


def chunk(text: str) -> bytes:
    return encode_data({"id": "c1", "object": "chat.completion.chunk", "model": "up", "created": 1,
                        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def feed(relay: StreamRelay, clock: Clock, data: bytes) -> None:
    """Deliver upstream bytes and end the reactor turn (the relay converts a turn's reads together)."""
    relay.dataReceived(data)
    clock.advance(0)


def make(dialect: Any = OPENAI_STREAM, idle: float = 60, keepalive: float = 15) -> tuple[StreamRelay, FakeRequest, FakeUpstream, Clock, list[str]]:
    request, upstream, clock = FakeRequest(), FakeUpstream(), Clock()
    committed: list[str] = []
    if dialect is OPENAI_STREAM:
        pipeline = StreamPipeline(SSEJsonSource(), [OpenAIPassthrough("gpt", client_wants_usage=False)], encode_data)
    else:
        pipeline = StreamPipeline(SSEJsonSource(), [], encode_event)
    relay = StreamRelay(request, pipeline, dialect, clock, idle_timeout=idle, keepalive=keepalive,
                        on_first_write=lambda: committed.append("headers"))
    relay.makeConnection(upstream)  # type: ignore[arg-type]
    return relay, request, upstream, clock, committed


def test_events_are_written_one_per_write_and_done_once() -> None:
    relay, request, upstream, clock, committed = make()
    body = chunk("a") + chunk("b") + b"data: [DONE]\n\n"
    for i in range(0, len(body), 7):  # split at arbitrary bytes
        feed(relay, clock, body[i:i + 7])
    relay.connectionLost(Failure(ResponseDone()))
    assert committed == ["headers"]
    assert request.writes[-1] == b"data: [DONE]\n\n"
    assert sum(w == b"data: [DONE]\n\n" for w in request.writes) == 1
    assert len(request.writes) == 3 and all(w.endswith(b"\n\n") for w in request.writes)
    assert b'"model":"gpt"' in request.writes[0]
    assert request.producer is None
    outcome = []
    relay.done.addCallback(outcome.append)
    assert outcome[0].error is None and not outcome[0].client_hung_up


def test_client_backpressure_pauses_and_resumes_the_upstream() -> None:
    relay, request, upstream, clock, _ = make()
    assert request.producer is relay
    feed(relay, clock, chunk("a"))
    request.producer.pauseProducing()
    assert upstream.state == "paused"
    # Data already in flight when paused is still relayed, not lost (twisted #9132).
    feed(relay, clock, chunk("b"))
    assert len(request.writes) == 2
    request.producer.resumeProducing()
    assert upstream.state == "producing"


def test_paused_stream_does_not_idle_out() -> None:
    relay, request, upstream, clock, _ = make(idle=10)
    feed(relay, clock, chunk("a"))
    request.producer.pauseProducing()
    clock.advance(100)
    assert upstream.state == "paused" and not relay.done.called


def test_client_hang_up_stops_the_upstream() -> None:
    relay, request, upstream, clock, _ = make()
    feed(relay, clock, chunk("a"))
    request.producer.stopProducing()
    assert upstream.state == "stopped"
    outcome = []
    relay.done.addCallback(outcome.append)
    assert outcome[0].client_hung_up
    feed(relay, clock, chunk("late"))
    assert len(request.writes) == 1


def test_cancelling_the_route_stops_the_upstream() -> None:
    relay, _, upstream, clock, _ = make()
    feed(relay, clock, chunk("a"))
    relay.done.cancel()
    assert upstream.state == "stopped"


def test_idle_upstream_ends_the_stream_with_an_error_chunk_then_done() -> None:
    relay, request, upstream, clock, _ = make(idle=5, keepalive=100)
    feed(relay, clock, chunk("a"))
    clock.advance(5)
    assert upstream.state == "stopped"
    assert request.writes[-2].startswith(b'data: {"error":') and b"5 seconds" in request.writes[-2]
    assert request.writes[-1] == b"data: [DONE]\n\n"


def test_break_mid_stream_on_anthropic_is_an_error_event_without_done() -> None:
    relay, request, _, clock, _ = make(ANTHROPIC_STREAM)
    feed(relay, clock, encode_event({"type": "message_start", "message": {"id": "m"}}))
    relay.connectionLost(Failure(ConnectionLost()))
    assert request.writes[-1].startswith(b"event: error\ndata: ")
    assert not any(b"[DONE]" in w for w in request.writes)


def test_break_before_the_first_byte_is_retryable() -> None:
    relay, request, _, clock, committed = make()
    relay.connectionLost(Failure(ConnectionLost()))
    failures = []
    relay.done.addErrback(failures.append)
    assert failures[0].check(FailedBeforeFirstByte) and request.writes == [] and committed == []


def test_keepalives_during_silence() -> None:
    relay, request, _, clock, _ = make(ANTHROPIC_STREAM, idle=100, keepalive=15)
    feed(relay, clock, encode_event({"type": "message_start", "message": {"id": "m"}}))
    clock.advance(15)
    clock.advance(15)
    assert request.writes[1:] == [ANTHROPIC_STREAM.keepalive] * 2
    feed(relay, clock, encode_event({"type": "ping"}))
    clock.advance(14)
    assert len(request.writes) == 4


def test_drain_mode_reads_the_upstream_to_its_end_after_a_hang_up() -> None:
    request, upstream, clock = FakeRequest(), FakeUpstream(), Clock()
    passthrough = OpenAIPassthrough("gpt", client_wants_usage=False)
    pipeline = StreamPipeline(SSEJsonSource(), [passthrough], encode_data)
    relay = StreamRelay(request, pipeline, OPENAI_STREAM, clock, idle_timeout=60, keepalive=15,
                        on_first_write=lambda: None, drain_on_hangup=True)
    relay.makeConnection(upstream)  # type: ignore[arg-type]
    feed(relay, clock, chunk("a"))
    request.producer.pauseProducing()
    request.producer.stopProducing()
    assert upstream.state == "producing" and relay.done.called and relay.drained is not None
    assert not relay.drained.called
    usage = encode_data({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}})
    feed(relay, clock, chunk("b") + usage)
    relay.connectionLost(Failure(ResponseDone()))
    assert relay.drained.called and len(request.writes) == 1
    assert pipeline.usage is not None and pipeline.usage.completion_tokens == 9


def test_events_read_in_one_turn_are_written_together_in_order() -> None:
    relay, request, _, clock, committed = make()
    for text in "abc":
        relay.dataReceived(chunk(text))  # three HTTP chunks from one socket read
    assert request.writes == []
    clock.advance(0)
    assert committed == ["headers"] and len(request.writes) == 1
    assert [e[len(b"data: "):] for e in request.writes[0].split(b"\n\n")[:-1]] == [
        chunk(t)[len(b"data: "):-2].replace(b'"model":"up"', b'"model":"gpt"') for t in "abc"]
    relay.dataReceived(chunk("d"))
    relay.connectionLost(Failure(ResponseDone()))  # the end in the same turn: nothing is left behind
    assert b"".join(request.writes[1:]) == chunk("d").replace(b'"model":"up"', b'"model":"gpt"') + b"data: [DONE]\n\n"


def test_idle_time_counts_from_the_last_upstream_bytes() -> None:
    relay, request, upstream, clock, _ = make(idle=5, keepalive=100)
    feed(relay, clock, chunk("a"))
    clock.advance(3)
    feed(relay, clock, chunk("b"))
    clock.advance(4)  # 7 s since the start, 4 s since the last bytes
    assert upstream.state == "producing" and not relay.done.called
    clock.advance(1)
    assert upstream.state == "stopped" and b"5 seconds" in request.writes[-2]


def test_a_hang_up_in_the_same_turn_still_counts_what_was_read() -> None:
    relay, request, upstream, clock, _ = make()
    pipeline = relay.pipeline
    feed(relay, clock, chunk("a"))
    usage = encode_data({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}})
    relay.dataReceived(chunk("b") + usage)
    request.producer.stopProducing()
    clock.advance(0)
    assert upstream.state == "stopped" and len(request.writes) == 1
    assert pipeline.usage is not None and pipeline.usage.completion_tokens == 9
