"""
The one Anthropic event writer (L{sapproxy.translate.anthropic_stream}): whatever a converter asks of it, what
reaches a client is a valid Anthropic event sequence, or the converter's bug raises instead.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import RawMessageStreamEvent
from conftest import accumulate_anthropic
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from sapproxy.translate import ir
from sapproxy.translate.anthropic_stream import AnthropicStreamWriter, StreamOrderError, message_start
from sapproxy.translate.framing.sse import Rendered, encode_event, json_text
from sapproxy.translate.wire.converse import ConverseToAnthropicStream
from sapproxy.translate.wire.gemini import GeminiToAnthropicStream

_validate = TypeAdapter(RawMessageStreamEvent).validate_python
USAGE: ir.Usage = {"input_tokens": 3, "output_tokens": 2}


def check_order(events: list[Any]) -> None:
    """
    The order the writer promises: message_start first (unless an error comes first), blocks numbered in
    the order they start, one open at a time, deltas only on the open block (or a closed tool_use block),
    and message_stop or error last, once.
    """
    kinds = [e["type"] for e in events]
    ended = [i for i, k in enumerate(kinds) if k in ("message_stop", "error")]
    assert len(ended) <= 1 and (not ended or ended[0] == len(events) - 1)
    if kinds and kinds[0] != "error":
        assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    open_index: int | None = None
    types: list[str] = []
    for event in events:
        if event["type"] != "error":
            _validate(event)
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None, "a block started before the previous one stopped"
            assert event["index"] == len(types)
            types.append(event["content_block"]["type"])
            open_index = event["index"]
        elif kind == "content_block_delta":
            late = types[event["index"]] == "tool_use" and event["delta"]["type"] == "input_json_delta"
            assert event["index"] == open_index or late
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        elif kind == "message_delta":
            assert open_index is None
    if "message_stop" in kinds:
        assert kinds[-2:] == ["message_delta", "message_stop"]


def test_a_whole_stream() -> None:
    writer = AnthropicStreamWriter()
    out: list[ir.StreamEvent] = []
    writer.start(out, "msg_1", "claude-x")
    assert writer.open(out, {"type": "thinking", "thinking": "", "signature": ""}) == 0
    writer.delta(out, {"type": "thinking_delta", "thinking": "hm"})
    writer.delta(out, {"type": "signature_delta", "signature": "SIG"})
    assert writer.open(out, {"type": "text", "text": ""}) == 1  # closes the thinking block
    writer.text(out, "Hé \"x\"")
    assert writer.open(out, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}) == 2
    writer.delta(out, {"type": "input_json_delta", "partial_json": '{"a":'})
    writer.finish(out, "tool_use", USAGE)
    assert out == [
        message_start("msg_1", "claude-x"),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hé \"x\""}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"a":'}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": USAGE},
        {"type": "message_stop"},
    ]
    assert writer.ended
    # The text delta is rendered from its template, byte for byte what the encoder would write.
    text = out[6]
    assert type(text) is Rendered
    assert encode_event(text) == b"event: content_block_delta\ndata: " + json_text(json.loads(json.dumps(text))) + b"\n\n"
    check_order(out)


def test_message_start_carries_the_usage_known() -> None:
    assert message_start("m", "x")["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert message_start("m", "x", {"input_tokens": 7, "output_tokens": 0})["message"]["usage"]["input_tokens"] == 7


def test_stop_sequence_and_details_in_message_delta() -> None:
    writer = AnthropicStreamWriter()
    out: list[ir.StreamEvent] = []
    writer.start(out, "m", "x")
    writer.finish(out, "refusal", USAGE, stop_sequence="END", stop_details={"type": "refusal"})
    assert out[-2] == {"type": "message_delta", "usage": USAGE,
                       "delta": {"stop_reason": "refusal", "stop_sequence": "END", "stop_details": {"type": "refusal"}}}
    # Key order is the wire order: the client sees stop_reason, stop_sequence, then stop_details.
    assert list(out[-2]["delta"]) == ["stop_reason", "stop_sequence", "stop_details"]  # type: ignore[typeddict-item]


def test_an_error_ends_the_stream_where_it_stands() -> None:
    writer = AnthropicStreamWriter()
    out: list[ir.StreamEvent] = []
    error: ir.ErrorEvent = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    writer.fail(out, error)  # before message_start: allowed, as Anthropic itself does
    assert out == [error] and writer.ended
    with pytest.raises(StreamOrderError):
        writer.start(out, "m", "x")
    with pytest.raises(StreamOrderError):
        writer.fail(out, error)


def test_late_tool_input_goes_to_its_closed_tool_block_only() -> None:
    writer = AnthropicStreamWriter()
    out: list[ir.StreamEvent] = []
    writer.start(out, "m", "x")
    writer.open(out, {"type": "tool_use", "id": "a", "name": "f", "input": {}})
    writer.open(out, {"type": "text", "text": ""})
    writer.tool_input_at(out, 0, '{"late":1}')
    assert out[-1] == {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"late":1}'}}
    for index in (1, 2, -1):  # a text block, a block not opened yet, nonsense
        with pytest.raises(StreamOrderError):
            writer.tool_input_at(out, index, "x")
    writer.finish(out, "end_turn", USAGE)
    check_order(out)


@pytest.mark.parametrize("misuse", [
    lambda w, out: w.open(out, {"type": "text", "text": ""}),  # before message_start
    lambda w, out: (w.start(out, "m", "x"), w.start(out, "m", "x")),
    lambda w, out: (w.start(out, "m", "x"), w.delta(out, {"type": "text_delta", "text": "a"})),  # no open block
    lambda w, out: (w.start(out, "m", "x"), w.text(out, "a")),
    lambda w, out: (w.start(out, "m", "x"), w.open(out, {"type": "text", "text": ""}), w.close(out), w.text(out, "a")),
    lambda w, out: (w.start(out, "m", "x"), w.finish(out, "end_turn", USAGE), w.open(out, {"type": "text", "text": ""})),
    lambda w, out: (w.start(out, "m", "x"), w.finish(out, "end_turn", USAGE), w.finish(out, "end_turn", USAGE)),
    lambda w, out: w.finish(out, "end_turn", USAGE),  # before message_start
], ids=["open-before-start", "start-twice", "delta-no-block", "text-no-block", "delta-after-stop",
        "open-after-end", "finish-twice", "finish-before-start"])
def test_misuse_raises_instead_of_reaching_a_client(misuse: Any) -> None:
    with pytest.raises(StreamOrderError):
        misuse(AnthropicStreamWriter(), [])


_BLOCKS: list[ir.ContentBlock] = [
    {"type": "text", "text": ""},
    {"type": "thinking", "thinking": "", "signature": ""},
    {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}},
    {"type": "redacted_thinking", "data": "AAA="},
]

_ops = st.lists(st.one_of(
    st.tuples(st.just("open"), st.integers(0, len(_BLOCKS) - 1)),
    st.tuples(st.just("text"), st.text(max_size=5)),
    st.tuples(st.just("thinking"), st.text(max_size=5)),
    st.tuples(st.just("late"), st.integers(-1, 6)),
    st.tuples(st.just("close"), st.none()),
    st.tuples(st.just("finish"), st.none()),
    st.tuples(st.just("fail"), st.none()),
), max_size=25)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, start=st.booleans())
def test_any_use_gives_a_valid_sequence_or_raises(ops: list[tuple[str, Any]], start: bool) -> None:
    writer = AnthropicStreamWriter()
    out: list[ir.StreamEvent] = []
    if start:
        writer.start(out, "msg_p", "model")
    for op, arg in ops:
        before = len(out)
        try:
            if op == "open":
                writer.open(out, _BLOCKS[arg])
            elif op == "text":
                writer.text(out, arg)
            elif op == "thinking":
                writer.delta(out, {"type": "thinking_delta", "thinking": arg})
            elif op == "late":
                writer.tool_input_at(out, arg, "{}")
            elif op == "close":
                writer.close(out)
            elif op == "finish":
                writer.finish(out, "end_turn", USAGE)
            else:
                writer.fail(out, {"type": "error", "error": {"type": "api_error", "message": "x"}})
        except StreamOrderError:
            assert len(out) == before, "a refused request wrote nothing"
        check_order(out)
    if writer.started and not writer.ended:
        writer.finish(out, "end_turn", USAGE)
        check_order(out)
        if all(e["type"] != "content_block_delta" or e["delta"]["type"] != "input_json_delta" for e in out):
            accumulate_anthropic(list(out))  # type: ignore[arg-type]


def test_gemini_and_converse_text_deltas_are_rendered_too() -> None:
    gemini = GeminiToAnthropicStream("g", message_id="msg_g")
    events = gemini.feed({"candidates": [{"content": {"parts": [{"text": "Grüß \\ dich"}]}}]}) + gemini.finish()
    converse = ConverseToAnthropicStream("c", message_id="msg_c")
    events += converse.feed({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "日本"}}})
    deltas = [e for e in events if e["type"] == "content_block_delta"]
    assert [type(e) for e in deltas] == [Rendered, Rendered]
    for event in deltas:
        assert encode_event(event) == b"event: content_block_delta\ndata: " + json_text(json.loads(json.dumps(event))) + b"\n\n"


def test_converse_interleaved_blocks_keep_one_open() -> None:
    """
    Bedrock sends Converse blocks one after another; should an upstream interleave them, the client still
    gets one block open at a time, and a late tool input fragment still reaches its tool_use block.
    """
    stream = ConverseToAnthropicStream("c", message_id="msg_c")
    out: list[Any] = []
    for event in [
        {"contentBlockStart": {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t0", "name": "f"}}}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"a":'}}}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"text": "hi"}}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "1}"}}}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"text": " there"}}},
        {"contentBlockStop": {"contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "tool_use"}},
        {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 2}}},
    ]:
        out += stream.feed(event)
    check_order(out)
    tool_input = "".join(e["delta"]["partial_json"] for e in out
                         if e["type"] == "content_block_delta" and e["index"] == 0)
    assert json.loads(tool_input) == {"a": 1}
    texts = "".join(e["delta"].get("text", "") for e in out if e["type"] == "content_block_delta")
    assert texts == "hi there"
