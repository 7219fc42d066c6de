"""
AWS event-stream decoding for Bedrock invoke-with-response-stream.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from anthropic.types import ErrorResponse
from conftest import fixture_path
from hypothesis import given, settings
from hypothesis import strategies as st

from sapproxy.translate.framing.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    encode_chunk,
    encode_event_frame,
)

EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                                           "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "héllo ✓"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 3}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 5, "outputTokenCount": 3}},
]
STREAM = b"".join(encode_chunk(e) for e in EVENTS)


def decode(pieces: list[bytes]) -> list[dict[str, Any]]:
    decoder = EventStreamDecoder()
    out: list[dict[str, Any]] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    decoder.finish()
    return out


def test_fixture_exception_frame() -> None:
    raw = base64.b64decode(fixture_path("bedrock/model-stream-error-exception.eventstream.base64.txt").read_bytes())
    assert len(raw) == 221
    assert decode([raw]) == [{"type": "error", "error": {"type": "api_error", "message": "Model Stream Error"}}]
    ErrorResponse.model_validate(decode([raw])[0])
    # byte by byte too
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == decode([raw])


def test_whole_stream() -> None:
    assert decode([STREAM]) == EVENTS


@pytest.mark.parametrize(
    "aws, anthropic",
    [("throttlingException", "rate_limit_error"), ("validationException", "invalid_request_error"),
     ("serviceUnavailableException", "overloaded_error"), ("internalServerException", "api_error"),
     ("somethingNew", "api_error")],
)
def test_exception_mapping(aws: str, anthropic: str) -> None:
    frame = encode_event_frame(json.dumps({"message": "nope"}).encode(), {":message-type": "exception", ":exception-type": aws, ":content-type": "application/json"})
    assert decode([frame]) == [{"type": "error", "error": {"type": anthropic, "message": "nope"}}]


def test_error_frame() -> None:
    frame = encode_event_frame(b"", {":message-type": "error", ":error-code": "ThrottlingException", ":error-message": "slow down"})
    assert decode([frame]) == [{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}]


def test_truncated_stream_is_an_error() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(STREAM[:-3])
    with pytest.raises(EventStreamError):
        decoder.finish()


def test_bad_payload_is_an_error() -> None:
    frame = encode_event_frame(b'{"bytes": "!!notbase64json"}', {":message-type": "event", ":event-type": "chunk"})
    with pytest.raises(EventStreamError):
        decode([frame])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=20))
def test_any_split_decodes_the_same(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0] + points, points + [len(STREAM)])]
    assert decode(pieces) == EVENTS


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(STREAM) - 1), st.integers(1, 255))
def test_a_flipped_byte_is_detected(position: int, mask: int) -> None:
    corrupt = bytearray(STREAM)
    corrupt[position] ^= mask
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError):
        decoder.feed(bytes(corrupt))
        decoder.finish()
    # The decoder stays broken.
    with pytest.raises(EventStreamError):
        decoder.feed(b"x")




def test_simulator_frames_decode() -> None:
    """The simulator's own encoder and this decoder agree."""
    from sapproxy.simulator.eventstream import chunk_frame, exception_frame

    data = b"".join(chunk_frame(e) for e in EVENTS) + exception_frame("throttlingException", "Too many requests")
    decoder = EventStreamDecoder()
    out = [e for i in range(0, len(data), 7) for e in decoder.feed(data[i : i + 7])]
    assert decoder.finish() == []
    assert out[:-1] == EVENTS
    assert out[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "Too many requests"}}


@pytest.mark.parametrize("payload", [
    # Other spellings of the same chunk payload: key order, spaces, an escaped slash, no padding, extra keys.
    lambda b64: json.dumps({"p": "xyz", "bytes": b64}).encode(),
    lambda b64: json.dumps({"bytes": b64, "p": "abc"}, indent=1).encode(),
    lambda b64: ('{"bytes":"%s"}' % b64.replace("/", "\\/")).encode(),
    lambda b64: json.dumps({"bytes": b64}, separators=(",", ":")).encode(),
    lambda b64: json.dumps({"bytes": b64, "p": "a-b_c", "extra": 1}).encode(),
])
def test_chunk_payload_spellings(payload: Any) -> None:
    """The fast path for Bedrock's usual payload and the JSON fallback give the same event."""
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "???a/b\u00e9" * 20}}
    b64 = base64.b64encode(json.dumps(event).encode()).decode()
    assert "/" in b64
    frame = encode_event_frame(payload(b64), {":event-type": "chunk", ":message-type": "event"})
    assert decode([frame]) == [event]


@settings(max_examples=500, deadline=None)
@given(b64=st.one_of(st.text("ABCab01+/=", max_size=12), st.text(max_size=6)),
       tail=st.one_of(st.just("}"), st.builds(lambda p: ',"p":"%s"}' % p, st.one_of(st.text("aZ9", max_size=4),
                                                                                   st.text(max_size=4))),
                      st.text(max_size=8)),
       head=st.sampled_from(['{"bytes":"', '{"bytes": "', '{"p":"x","bytes":"', '']))
def test_chunk_payload_read_at_once_is_the_expressions(b64: str, tail: str, head: str) -> None:
    """
    msgspec's reading of the usual payload (JSON and strict base64 in one call) gives the bytes the regular
    expression or the JSON fallback gives, or leaves it to them, for payloads of the usual shape and near
    misses.
    """
    from sapproxy.translate.framing import eventstream

    payload = (head + b64 + '"' + tail).encode()

    def outcome(fn: Any) -> Any:
        try:
            return fn(payload)
        except Exception as e:
            return type(e)

    def now(p: bytes) -> Any:
        try:
            return eventstream._decode_chunk_payload(p).data
        except eventstream.msgspec.DecodeError:
            return eventstream._chunk_bytes(p)

    assert outcome(now) == outcome(eventstream._chunk_bytes)


def test_impossible_lengths_are_refused_at_once() -> None:
    """A prelude (CRC-valid) that claims a frame larger than any real one is corruption, not a frame to wait for."""
    import struct
    import zlib

    head = struct.pack("!II", 100 * 1024 * 1024, 0)
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="impossible lengths"):
        decoder.feed(head + struct.pack("!I", zlib.crc32(head)))
    head = struct.pack("!II", 20, 200 * 1024)
    with pytest.raises(EventStreamError, match="impossible lengths"):
        EventStreamDecoder().feed(head + struct.pack("!I", zlib.crc32(head)))
