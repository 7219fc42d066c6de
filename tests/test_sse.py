"""
The incremental SSE decoder: whatever the split of the bytes, the same events come out.
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from sapproxy.translate.framing.sse import SSEDecoder, SSEEvent, encode_event, encode_raw
from conftest import fixture_path


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.finish())
    return out


def test_lf_crlf_and_cr_line_ends() -> None:
    for sep in (b"\n", b"\r\n", b"\r"):
        body = sep.join([b"event: a", b"data: 1", b"", b"data: x", b"data: y", b"", b""])
        assert decode_all([body]) == [SSEEvent("a", "1"), SSEEvent(None, "x\ny")]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    assert decode_all([b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"]) == [SSEEvent(None, "1"), SSEEvent(None, "2")]


def test_comments_are_counted_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n\ndata:no-space\n\n") == [SSEEvent(None, "no-space")]
    assert decoder.comments == 1


def test_final_event_without_blank_line_is_kept() -> None:
    assert decode_all([b"data: 1\n\ndata: [DONE]"]) == [SSEEvent(None, "1"), SSEEvent(None, "[DONE]")]


def test_encoders_round_trip() -> None:
    payload = {"type": "content_block_delta", "delta": {"text": "é\n"}}
    (event,) = decode_all([encode_event(payload)])
    assert event.event == "content_block_delta" and event.json() == payload
    assert decode_all([encode_raw("x", "a\nb")]) == [SSEEvent("x", "a\nb")]


def _recorded_anthropic() -> bytes:
    return fixture_path("anthropic/basic_response.txt").read_bytes()


def test_recorded_anthropic_stream() -> None:
    events = decode_all([_recorded_anthropic()])
    assert [e.event for e in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    assert all(e.json()["type"] == e.event for e in events)


@given(st.data())
def test_any_split_decodes_the_same(data: st.DataObject) -> None:
    body = _recorded_anthropic().replace(b"\n", b"\r\n")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=20)))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    assert decode_all(chunks) == decode_all([body])
