"""
The incremental SSE decoder: whatever the split of the bytes, the same events come out.
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from sapproxy.translate.framing.sse import SSEDecoder, SSEEvent, SSEEventTooLarge, encode_event, encode_raw
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


_MIXED_LF = (b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\ndata: 1\ndata: 2\n\ndata:no-space\n\n\n\ndata:  two\n\n"
             b"id: 7\ndata: after-id\n\nretry: 5\n\ndata: {\"b\":\"\xc3\xa9\"}\n\ndata: [DONE]\n\ndata: tail")


@given(st.data())
def test_lf_fast_path_decodes_as_the_line_rules_do(data: st.DataObject) -> None:
    # The LF-only path splits at blank lines; the CRLF body goes line by line: the events must agree, whatever
    # the split, including a read that switches to CRLF half-way.
    reference = decode_all([_MIXED_LF.replace(b"\n", b"\r\n")])
    assert [e.data for e in reference][:3] == ['{"a":1}', "1\n2", "no-space"]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(_MIXED_LF)), max_size=20)))
    chunks = [_MIXED_LF[a:b] for a, b in zip([0] + cuts, cuts + [len(_MIXED_LF)])]
    assert decode_all(chunks) == reference
    switch = data.draw(st.integers(0, len(_MIXED_LF)))
    mixed = _MIXED_LF[:switch] + _MIXED_LF[switch:].replace(b"\n", b"\r\n")
    assert decode_all([mixed[:switch], mixed[switch:]]) == reference


class _LineByLine(SSEDecoder):
    """The decoder without its LF shortcut: the rules applied line by line, as before the shortcut."""

    __slots__ = ()

    def _feed_lf(self, buffer: bytes) -> list[SSEEvent]:
        return self._feed_lines(buffer)


def _outcome(decoder: SSEDecoder, chunks: list[bytes]) -> object:
    out: list[SSEEvent] = []
    try:
        for chunk in chunks:
            out.extend(decoder.feed(chunk))
        out.extend(decoder.finish())
    except SSEEventTooLarge as e:
        return ("too large", str(e))
    return out


@given(st.data())
def test_lf_fast_path_keeps_the_size_limits(data: st.DataObject) -> None:
    # Same events, or the same refusal, as line by line, whatever the split and the cap.
    body = _MIXED_LF + b"\n\ndata: " + b"x" * data.draw(st.integers(0, 80)) + b"\n" + b"y" * data.draw(
        st.integers(0, 80))
    cap = data.draw(st.integers(1, 90))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    assert _outcome(SSEDecoder(max_event=cap), chunks) == _outcome(_LineByLine(max_event=cap), chunks)
