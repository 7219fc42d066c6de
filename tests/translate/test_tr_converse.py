"""
Bedrock Converse <-> IR: requests, responses, and the recorded ConverseStream fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Message
from conftest import FIXTURES, accumulate_anthropic, fixture_path
from hypothesis import given, settings
from hypothesis import strategies as st

from sapproxy.translate.wire.converse import (
    ConverseStreamParseError,
    ConverseToAnthropicStream,
    converse_response_to_ir,
    ir_request_to_converse,
    parse_converse_stream_line,
)
from sapproxy.translate.errors import InvalidRequest

BEDROCK_FIXTURES = sorted((FIXTURES / "bedrock").glob("*.chunks.txt")) if (FIXTURES / "bedrock").exists() else []


def lines(path: Path) -> list[dict[str, Any]]:
    return [parse_converse_stream_line(line) for line in path.read_text().splitlines() if line.strip()]


def run(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ConverseToAnthropicStream]:
    conv = ConverseToAnthropicStream("client-model", message_id="msg_test")
    out: list[dict[str, Any]] = []
    for event in events:
        out.extend(conv.feed(event))
    out.extend(conv.finish())
    return out, conv


accumulate = accumulate_anthropic


@pytest.mark.parametrize("path", BEDROCK_FIXTURES, ids=lambda p: p.name)
def test_every_fixture(path: Path) -> None:
    source = lines(path)
    events, conv = run(source)
    message = accumulate(events)
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in source if "contentBlockDelta" in e)
    assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == text
    usage = next(e["metadata"]["usage"] for e in source if "metadata" in e)
    assert conv.usage is not None and conv.usage.prompt_tokens == usage["inputTokens"]
    assert message["usage"]["output_tokens"] == usage["outputTokens"]
    # message_delta comes at metadata (after messageStop), not before.
    stop_at = next(i for i, e in enumerate(source) if "messageStop" in e)
    conv2 = ConverseToAnthropicStream("m", message_id="msg_x")
    before = [e for ev in source[: stop_at + 1] for e in conv2.feed(ev)]
    assert all(e["type"] != "message_delta" for e in before)


def test_text_exact() -> None:
    events, _ = run(lines(fixture_path("bedrock/issue-17523-converse-stream.chunks.txt")))
    assert events == [
        {"type": "message_start", "message": {"id": "msg_test", "type": "message", "role": "assistant", "model": "client-model", "content": [],
                                               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "! How can I assist you"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " today? If"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
         "usage": {"input_tokens": 2, "output_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}},
        {"type": "message_stop"},
    ]


def test_reasoning_with_signature() -> None:
    message = accumulate(run(lines(fixture_path("bedrock/bedrock-reasoning.chunks.txt")))[0])
    thinking, text = message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"].startswith("Let me count the r's")
    assert thinking["signature"].startswith("Ep0CCkgICxAB") and thinking["signature"].endswith("GAE=")
    assert text["text"].startswith("There are **3**")
    assert message["stop_reason"] == "end_turn"


def test_redacted_content_and_tool_input() -> None:
    path = fixture_path("bedrock/amazon-bedrock-redacted-content.chunks.txt")
    source = lines(path)
    message = accumulate(run(source)[0])
    redacted, tool = message["content"]
    assert redacted == {"type": "redacted_thinking", "data": source[1]["contentBlockDelta"]["delta"]["reasoningContent"]["redactedContent"]}
    assert tool["id"] == "call_61f8fcbe423a58699163c53e076f1a06" and tool["name"] == "propose"
    assert tool["input"] == {"groups": [{"name": "Sales", "parentGroupName": ""}, {"name": "Team1", "parentGroupName": "Sales"}]}
    assert message["stop_reason"] == "tool_use"
    # ... and the redacted block goes back to Converse unchanged.
    back = ir_request_to_converse({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [redacted]}]})
    assert back["messages"][1]["content"] == [{"reasoningContent": {"redactedContent": redacted["data"]}}]


def test_no_metadata_finish_closes() -> None:
    events, _ = run([{"messageStart": {"role": "assistant"}}, {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "a"}}},
                     {"messageStop": {"stopReason": "end_turn"}}])
    assert [e["type"] for e in events][-2:] == ["message_delta", "message_stop"]
    accumulate(events)


def test_stream_exception_event() -> None:
    events, _ = run([{"messageStart": {"role": "assistant"}}, {"throttlingException": {"message": "slow"}}])
    assert events[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}


def test_parse_python_literal_lines() -> None:
    assert parse_converse_stream_line("{'messageStart': {'role': 'assistant'}}") == {"messageStart": {"role": "assistant"}}
    assert parse_converse_stream_line("{'messageStop': {'stopReason': 'end_turn', 'x': None, 'y': True}}") == {
        "messageStop": {"stopReason": "end_turn", "x": None, "y": True}}
    assert parse_converse_stream_line(" {\"a\": 1} ") == {"a": 1}
    assert parse_converse_stream_line("{'r': {'redactedContent': b'\\x01\\x02'}}") == {"r": {"redactedContent": "AQI="}}
    for bad in ("__import__('os').system('true')", "[1, 2]", "not json", "{'a': f(1)}", ""):
        with pytest.raises(ConverseStreamParseError):
            parse_converse_stream_line(bad)


def test_response_to_ir() -> None:
    resp = {
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "SIG"}}},
            {"text": "Hi"},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {"a": 1}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 14, "cacheReadInputTokens": 2, "cacheWriteInputTokens": 3},
        "metrics": {"latencyMs": 10},
    }
    out = converse_response_to_ir(resp, "client-model", message_id="msg_x")
    Message.model_validate(out)
    assert out["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "SIG"},
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "tooluse_1", "name": "f", "input": {"a": 1}},
    ]
    assert out["usage"] == {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 3}
    assert converse_response_to_ir({"output": {"message": {"content": []}}, "stopReason": "guardrail_intervened"}, "m")["stop_reason"] == "refusal"


def test_request_mapping() -> None:
    body = {
        "model": "x", "max_tokens": 1000, "temperature": 0.5, "top_p": 0.9, "top_k": 10, "stop_sequences": ["S"],
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "_response_format": {"type": "json_object"},
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}, "cache_control": {"type": "ephemeral"}},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "f"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok", "cache_control": {"type": "ephemeral"}}]},
        ],
    }
    out = ir_request_to_converse(body)
    assert out["system"] == [{"text": "sys"}, {"cachePoint": {"type": "default"}}]
    assert out["inferenceConfig"] == {"maxTokens": 3048, "topP": 0.9, "stopSequences": ["S"]}
    assert out["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert out["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "f", "description": "d", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
                  {"cachePoint": {"type": "default"}}],
        "toolChoice": {"tool": {"name": "f"}},
    }
    assert out["messages"] == [
        {"role": "user", "content": [{"text": "hi"}, {"image": {"format": "png", "source": {"bytes": "AAAA"}}}]},
        {"role": "assistant", "content": [{"reasoningContent": {"reasoningText": {"text": "t", "signature": "s"}}},
                                          {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}], "status": "success"}},
                                     {"cachePoint": {"type": "default"}}]},
    ]
    assert "_response_format" not in json.dumps(out)


def test_invalid() -> None:
    with pytest.raises(InvalidRequest) as e:
        ir_request_to_converse({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://x"}}]}]})
    assert e.value.param == "messages[0].content[0].source.type"


_text = st.text(max_size=10)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant", "system"]),
                          st.one_of(_text, st.lists(st.one_of(
                              st.builds(lambda t: {"type": "text", "text": t}, _text),
                              st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, _text, _text),
                              st.builds(lambda d: {"type": "redacted_thinking", "data": d}, _text),
                          ), max_size=3))), max_size=6))
def test_request_never_crashes(messages: list[dict[str, Any]]) -> None:
    try:
        out = ir_request_to_converse({"max_tokens": 10, "messages": messages})
    except InvalidRequest:
        # Only a system turn with non-text blocks is refused here.
        assert any(m["role"] == "system" and isinstance(m["content"], list) and any(b["type"] != "text" for b in m["content"]) for m in messages)
        return
    json.dumps(out)
    roles = [m["role"] for m in out["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:]))


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _values, max_size=4))
def test_python_repr_lines_parse_like_json(value: dict[str, Any]) -> None:
    """Whatever the SAP gateway's Python repr looks like (quotes, escapes, unicode), the event is the same."""
    assert parse_converse_stream_line(repr(value)) == value
    assert parse_converse_stream_line(json.dumps(value)) == value




@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, _text), max_size=3)), min_size=1, max_size=6),
       st.booleans())
def test_requests_pass_the_simulators_converse_validation(turns: list[Any], thinking: bool) -> None:
    from sapproxy.simulator.converse_api import validate

    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(turns)]
    messages[0] = {"role": "user", "content": "start"}
    body: dict[str, Any] = {"max_tokens": 1000, "temperature": 0.5, "messages": messages}
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 2000}
    out = ir_request_to_converse(body)
    if out["messages"][-1]["role"] == "assistant" or len(out["messages"]) < 1:
        return
    assert validate(out) is None, validate(out)
