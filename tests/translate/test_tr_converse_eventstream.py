"""
Bedrock's own C{converse-stream}: AWS event-stream frames whose C{:event-type} names the ConverseStream event
and whose payload is its JSON body (with Bedrock's C{"p"} padding).

The golden streams are the recorded ConverseStream fixtures framed again as Bedrock frames them; botocore's own
event-stream parser (with the bedrock-runtime service model, as boto3's C{converse_stream} uses it) reads
those frames to the same events, so the framing here is the one AWS clients accept, not one of our making.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import FIXTURES, accumulate_anthropic, fixture_path
from hypothesis import given, settings
from hypothesis import strategies as st

from sapproxy.translate.framing.eventstream import (
    ConverseEventStreamDecoder, EventStreamError, encode_converse_event, encode_event_frame,
)
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline
from sapproxy.translate.wire.converse import WIRE_FORMAT as CONVERSE, _bytes_to_base64, parse_converse_stream_line

FIXTURE_FILES = sorted((FIXTURES / "bedrock").glob("*.chunks.txt"))
EXCEPTION_FRAME = base64.b64decode(
    fixture_path("bedrock/model-stream-error-exception.eventstream.base64.txt").read_bytes())
EVENTSTREAM = "application/vnd.amazon.eventstream"


def fixture_events(path: Path) -> list[dict[str, Any]]:
    return [parse_converse_stream_line(line) for line in path.read_text().splitlines() if line.strip()]


def framed(events: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_converse_event(event) for event in events)


def decode(pieces: Iterator[bytes] | list[bytes]) -> list[dict[str, Any]]:
    decoder = ConverseEventStreamDecoder()
    out: list[dict[str, Any]] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    assert decoder.finish() == []
    return out


def botocore_events(data: bytes) -> list[dict[str, Any]]:
    """The events boto3's C{converse_stream} would hand its caller for these bytes."""
    import botocore.session
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser

    shape = botocore.session.get_session().get_service_model("bedrock-runtime") \
        .operation_model("ConverseStream").output_shape.members["stream"]

    class Raw:
        def stream(self) -> Iterator[bytes]:
            yield from (data[i:i + 97] for i in range(0, len(data), 97))

        def close(self) -> None:
            pass

    return [_bytes_to_base64(event) for event in EventStream(Raw(), shape, EventStreamJSONParser(), "ConverseStream")]


def within(small: Any, big: Any) -> bool:
    """Every member botocore knows (its model may be older than the stream) is in the event as decoded here."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and within(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(within(a, b) for a, b in zip(small, big))
    return bool(small == big)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_golden_fixture_streams(path: Path) -> None:
    events = fixture_events(path)
    data = framed(events)
    assert decode([data]) == events
    assert decode(data[i:i + 1] for i in range(len(data))) == events
    theirs = botocore_events(data)
    assert [next(iter(e)) for e in theirs] == [next(iter(e)) for e in events]
    assert all(within(a, b) for a, b in zip(theirs, events)), (theirs, events)
    # The padding key is Bedrock's, not an event member: it never reaches the translator.
    assert b'"p":"abc' in data and all("p" not in body for e in decode([data]) for body in e.values())


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FIXTURE_FILES), st.lists(st.integers(min_value=0, max_value=6000), max_size=25))
def test_any_byte_split_gives_the_same_events(path: Path, cuts: list[int]) -> None:
    events = fixture_events(path)
    data = framed(events) + EXCEPTION_FRAME
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in zip(points, points[1:])]
    expected = events + [{"type": "error", "error": {"type": "api_error", "message": "Model Stream Error"}}]
    assert decode(pieces) == expected


def test_the_recorded_exception_frame_is_the_invoke_decoders_error_event() -> None:
    assert decode([EXCEPTION_FRAME]) == [{"type": "error", "error": {"type": "api_error",
                                                                       "message": "Model Stream Error"}}]
    throttled = encode_event_frame(b'{"message":"slow down"}', {
        ":message-type": "exception", ":exception-type": "throttlingException", ":content-type": "application/json"})
    assert decode([throttled]) == [{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}]
    error = encode_event_frame(b"", {":message-type": "error", ":error-code": "InternalFailure",
                                     ":error-message": "boom"})
    assert decode([error]) == [{"type": "error", "error": {"type": "api_error", "message": "boom"}}]


@pytest.mark.parametrize("frame, words", [
    (encode_event_frame(b'{"role":"assistant"}', {":message-type": "event", ":content-type": "application/json"}),
     "without an :event-type"),
    (encode_event_frame(b"not json", {":message-type": "event", ":event-type": "messageStart"}), "not JSON"),
    (encode_event_frame(b"[1]", {":message-type": "event", ":event-type": "messageStart"}), "not a JSON object"),
])
def test_a_malformed_event_is_a_stream_error(frame: bytes, words: str) -> None:
    decoder = ConverseEventStreamDecoder()
    with pytest.raises(EventStreamError, match=words):
        decoder.feed(frame)
    with pytest.raises(EventStreamError):  # broken for good: the byte stream cannot be resynchronised
        decoder.feed(encode_converse_event({"messageStart": {"role": "assistant"}}))


def test_crcs_are_checked_and_a_cut_stream_is_an_error() -> None:
    frame = bytearray(encode_converse_event({"messageStart": {"role": "assistant"}}))
    frame[-6] ^= 1
    with pytest.raises(EventStreamError, match="message CRC"):
        ConverseEventStreamDecoder().feed(bytes(frame))
    prelude = bytearray(encode_converse_event({"messageStart": {"role": "assistant"}}))
    prelude[8] ^= 1
    with pytest.raises(EventStreamError, match="prelude CRC"):
        ConverseEventStreamDecoder().feed(bytes(prelude))
    decoder = ConverseEventStreamDecoder()
    decoder.feed(encode_converse_event({"messageStart": {"role": "assistant"}})[:-1])
    with pytest.raises(EventStreamError, match="inside a frame"):
        decoder.finish()


def test_an_event_type_this_gateway_does_not_know_passes_to_the_translator_which_ignores_it() -> None:
    unknown = encode_converse_event({"somethingNew": {"x": 1}})
    assert decode([unknown]) == [{"somethingNew": {"x": 1}}]


def client_bytes(content_type: str, data: bytes, cuts: int = 7) -> bytes:
    from sapproxy.translate.client.anthropic_messages import CLIENT_API

    pipeline = StreamPipeline(CONVERSE.stream_source(content_type), CONVERSE.stream_to_ir("m", "msg_1"),
                              CLIENT_API.encode)
    out = [b for i in range(0, len(data), cuts) for b in pipeline.feed(data[i:i + cuts])]
    return b"".join(out + pipeline.finish())


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_the_wire_picks_the_source_by_content_type_and_both_framings_give_the_same_client_stream(path: Path) -> None:
    assert isinstance(CONVERSE.stream_source(EVENTSTREAM), ConverseEventStreamDecoder)
    assert isinstance(CONVERSE.stream_source("text/event-stream; charset=utf-8"), SSEJsonSource)
    events = fixture_events(path)
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    ours = client_bytes(EVENTSTREAM, framed(events))
    assert ours == client_bytes("text/event-stream", sse)
    message = accumulate_anthropic([json.loads(line[6:]) for line in ours.decode().splitlines()
                                    if line.startswith("data: ")])
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert message["usage"]["output_tokens"] == usage["outputTokens"]


def test_an_exception_frame_mid_stream_ends_the_client_stream_with_an_error() -> None:
    from sapproxy.translate.client.anthropic_messages import CLIENT_API

    events = fixture_events(fixture_path("bedrock/bedrock-text.chunks.txt"))[:4]
    pipeline = StreamPipeline(CONVERSE.stream_source(EVENTSTREAM), CONVERSE.stream_to_ir("m", "msg_1"),
                              CLIENT_API.encode)
    out = b"".join(pipeline.feed(framed(events) + EXCEPTION_FRAME) + pipeline.finish())
    names = [line[7:] for line in out.decode().splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names
    assert pipeline.error == "api_error"
