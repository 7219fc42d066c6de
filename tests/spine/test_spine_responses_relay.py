"""
The relay with a Responses API client: silence past the idle timeout ends the stream with the translator's own
C{response.failed} (never a C{completed}), keep-alives are SSE comments, and no C{[DONE]} is ever written.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from sapproxy.dispatch.relay import StreamRelay
from sapproxy.translate.client.openai_responses import CLIENT_API
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline
from sapproxy.translate.framing.sse import SSEDecoder, encode_event
from sapproxy.translate.wire.openai_responses import WIRE_FORMAT
from test_spine_relay import FakeRequest, FakeUpstream, feed

MESSAGE_START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                      "content": [], "model": "c", "usage": {"input_tokens": 3}}}


def relay_for(pipeline: StreamPipeline, idle: float = 5, keepalive: float = 100) -> tuple[StreamRelay, FakeRequest, FakeUpstream, Clock]:
    request, upstream, clock = FakeRequest(), FakeUpstream(), Clock()
    relay = StreamRelay(request, pipeline, CLIENT_API, clock, idle_timeout=idle, keepalive=keepalive,
                        on_first_write=lambda: None)
    relay.makeConnection(upstream)  # type: ignore[arg-type]
    return relay, request, upstream, clock


def events(request: FakeRequest) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    raw = decoder.feed(b"".join(request.writes)) + decoder.finish()
    return [json.loads(e.data) for e in raw]


def translated() -> StreamPipeline:
    call = CLIENT_API.call({"model": "c", "input": "hi", "stream": True}, "claude-x", {})
    return StreamPipeline(SSEJsonSource(), call.stream_from_ir(), CLIENT_API.encode)


def test_idle_upstream_ends_a_translated_stream_with_response_failed() -> None:
    relay, request, upstream, clock = relay_for(translated())
    feed(relay, clock, encode_event(MESSAGE_START))
    feed(relay, clock, encode_event({"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}))
    clock.advance(5)
    assert upstream.state == "stopped"
    got = events(request)
    assert [e["type"] for e in got][:2] == ["response.created", "response.in_progress"]
    assert got[-1]["type"] == "response.failed" and "5 seconds" in got[-1]["response"]["error"]["message"]
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    assert not any(b"[DONE]" in w for w in request.writes)


def test_a_native_stream_that_breaks_ends_with_response_failed() -> None:
    call = CLIENT_API.call({"model": "gpt-5", "input": "hi", "stream": True}, "gpt-5", {})
    pipeline = StreamPipeline(WIRE_FORMAT.stream_source("text/event-stream"), WIRE_FORMAT.passthrough_stream(call),
                              CLIENT_API.encode)
    relay, request, _, clock = relay_for(pipeline)
    feed(relay, clock, encode_event({"type": "response.created", "sequence_number": 0,
                                     "response": {"id": "resp_up", "status": "in_progress", "output": []}}))
    relay.connectionLost(Failure(ConnectionLost()))
    got = events(request)
    assert [e["type"] for e in got] == ["response.created", "response.failed"]
    assert got[0]["response"]["id"] == got[1]["response"]["id"] == call.frame.response_id


def test_keepalives_are_sse_comments() -> None:
    relay, request, _, clock = relay_for(translated(), idle=100, keepalive=15)
    feed(relay, clock, encode_event(MESSAGE_START))
    clock.advance(15)
    assert request.writes[-1] == CLIENT_API.keepalive and request.writes[-1].startswith(b":")
