"""
Gemini / Vertex <-> IR: request building, responses, and the recorded streamGenerateContent fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from conftest import FIXTURES, accumulate_anthropic, fixture_path
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.wire.gemini.signatures import mark
from sapproxy.translate.wire.gemini import (
    GeminiToAnthropicStream,
    apply_partial_arg,
    clean_schema,
    gemini_response_to_ir,
    ir_request_to_gemini,
)

EVENT = TypeAdapter(RawMessageStreamEvent)
GEMINI_FIXTURES = sorted((FIXTURES / "gemini").glob("*.chunks.txt"))


def chunks(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(path: Path, model: str = "gemini-client") -> tuple[list[dict[str, Any]], GeminiToAnthropicStream]:
    stream = GeminiToAnthropicStream(model, message_id="msg_test")
    events: list[dict[str, Any]] = []
    for chunk in chunks(path):
        events.extend(stream.feed(chunk))
    events.extend(stream.finish())
    return events, stream


accumulate = accumulate_anthropic


# -- the recorded streams


@pytest.mark.parametrize("path", GEMINI_FIXTURES, ids=lambda p: p.name)
def test_every_fixture_gives_valid_events(path: Path) -> None:
    events, stream = run(path)
    message = accumulate(events)
    assert events[0]["type"] == "message_start" and events[-1] == {"type": "message_stop"}
    assert message["model"] == "gemini-client"
    assert stream.usage is not None
    # Every thoughtSignature of the source is somewhere in the output, unchanged but marked as Gemini's
    # (signatures.GEMINI_MARK, issue 14 item 21: foreign signatures are told apart).
    signatures = [
        part["thoughtSignature"]
        for chunk in chunks(path)
        for cand in chunk.get("candidates", [])
        for part in cand.get("content", {}).get("parts", [])
        if "thoughtSignature" in part
    ]
    got = [b["signature"] for b in message["content"] if b["type"] == "thinking" and b["signature"]]
    assert got == [mark(s) for s in signatures]
    # Accumulated text equals the source's text.
    source_text = "".join(
        part.get("text", "")
        for chunk in chunks(path)
        for cand in chunk.get("candidates", [])
        for part in cand.get("content", {}).get("parts", [])
        if not part.get("thought")
    )
    assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == source_text


def test_text_stream_exact() -> None:
    events, stream = run(fixture_path("gemini/google-text.chunks.txt"))
    sig = chunks(fixture_path("gemini/google-text.chunks.txt"))[2]["candidates"][0]["content"]["parts"][0][
        "thoughtSignature"
    ]
    assert events[1:] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "There are **3**"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": ' "r"s in strawberry.\n\nst**r**awbe**rr**y'},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "signature_delta", "signature": mark(sig)}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 9, "output_tokens": 23 + 185, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                      "output_tokens_details": {"thinking_tokens": 185}},
        },
        {"type": "message_stop"},
    ]
    assert events[0]["message"]["usage"]["input_tokens"] == 9
    assert stream.usage is not None and stream.usage.reasoning_tokens == 185


def test_empty_text_part_with_only_a_signature_is_kept() -> None:
    path = fixture_path("gemini/issue-18073-empty-text-thought-signature.chunks.txt")
    message = accumulate(run(path)[0])
    sig = chunks(path)[1]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert message["content"] == [
        {"type": "text", "text": "4"},
        {"type": "thinking", "thinking": "", "signature": mark(sig)},
    ]
    # ... and goes back to Gemini on an empty text part, as it came.
    back = ir_request_to_gemini({"max_tokens": 10, "messages": [{"role": "user", "content": "2+2"}, message]})
    assert back["contents"][1] == {"role": "model", "parts": [{"text": "4"}, {"text": "", "thoughtSignature": sig}]}


def test_tool_call_with_partial_args() -> None:
    events, _ = run(fixture_path("gemini/google-stream-tool-call-arguments.chunks.txt"))
    message = accumulate(events)
    assert message["stop_reason"] == "tool_use"
    calls = [b for b in message["content"] if b["type"] == "tool_use"]
    assert [(c["name"], c["input"]) for c in calls] == [
        ("getWeather", {"location": "Boston"}),
        ("getWeather", {"location": "San Francisco"}),
    ]
    assert len({c["id"] for c in calls}) == 2 and all(c["id"].startswith("toolu_") for c in calls)
    # The first call carried a thoughtSignature: a thinking block right before it.
    assert message["content"][0]["type"] == "thinking" and message["content"][0]["signature"]


def _expected_from_partials(path: Path) -> dict[str, str]:
    """Independent oracle: concatenate stringValues per JSON path."""
    values: dict[str, str] = {}
    for chunk in chunks(path):
        for part in chunk["candidates"][0]["content"]["parts"]:
            for partial in part.get("functionCall", {}).get("partialArgs", []):
                values[partial["jsonPath"]] = values.get(partial["jsonPath"], "") + partial["stringValue"]
    return values


def _lookup(obj: Any, path: str) -> Any:
    import re

    for name, index in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        obj = obj[name] if name else obj[int(index)]
    return obj


def test_nested_partial_args_rebuild_the_object() -> None:
    path = fixture_path("gemini/google-vertex-stream-tool-call-arguments-nested.1.chunks.txt")
    message = accumulate(run(path)[0])
    (call,) = [b for b in message["content"] if b["type"] == "tool_use"]
    assert call["name"] == "cookRecipe"
    expected = _expected_from_partials(path)
    for json_path, value in expected.items():
        assert _lookup(call["input"], json_path) == value
    recipe = call["input"]["recipe"]
    assert recipe["name"] == "Lasagna"
    assert len(recipe["ingredients"]) == 10 and len(recipe["steps"]) == 10
    assert recipe["steps"][1] == "Cook lasagna noodles according to package directions, drain and set aside."
    assert recipe["ingredients"][0] == {"amount": "16 oz", "name": "Lasagna noodles"}


def test_no_args_call_and_thought_summary() -> None:
    path = fixture_path("gemini/google-stream-no-args-tool-call.chunks.txt")
    message = accumulate(run(path)[0])
    kinds = [b["type"] for b in message["content"]]
    assert kinds == ["thinking", "tool_use", "tool_use", "tool_use", "tool_use"]
    thinking = message["content"][0]
    assert thinking["thinking"].startswith("**Processing User Requests**")
    assert thinking["signature"].startswith("gemini:AY89a18a8")
    assert [(b["name"], b["input"]) for b in message["content"][1:]] == [
        ("read_theme", {}),
        ("read_screen", {"id": "A"}),
        ("read_screen", {"id": "B"}),
        ("read_screen", {"id": "C"}),
    ]
    assert message["usage"]["output_tokens"] == 58 + 183


def test_prompt_block_is_a_refusal() -> None:
    events, _ = run(fixture_path("gemini/issue-19758-prompt-block.chunks.txt"))
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1]["delta"]["stop_reason"] == "refusal"
    assert "PROHIBITED_CONTENT" in events[1]["delta"]["stop_details"]["explanation"]
    assert events[1]["usage"]["input_tokens"] == 9


def test_whole_function_call_fixture_round_trips() -> None:
    path = fixture_path("gemini/google-tool-call-gemini3.chunks.txt")
    message = accumulate(run(path)[0])
    source = chunks(path)[0]["candidates"][0]["content"]["parts"][0]
    assert message["content"][1]["input"] == {"location": "San Francisco"}
    request = {
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": message["content"][1]["id"], "content": "sunny"}]},
        ],
    }
    out = ir_request_to_gemini(request)
    assert out["contents"][1]["parts"] == [source]
    assert out["contents"][2]["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"content": "sunny"}}}
    ]


# -- non-stream responses


def test_response_to_ir() -> None:
    resp = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Hi"},
                        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "SIG"},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "cachedContentTokenCount": 4},
        "responseId": "abc",
    }
    out = gemini_response_to_ir(resp, "client-model")
    Message.model_validate(out)
    assert out["id"] == "msg_abc" and out["model"] == "client-model"
    assert out["stop_reason"] == "tool_use"
    assert out["content"][0] == {"type": "thinking", "thinking": "thinking...", "signature": ""}
    assert out["content"][1] == {"type": "text", "text": "Hi"}
    assert out["content"][2] == {"type": "thinking", "thinking": "", "signature": "gemini:SIG"}
    assert out["content"][3]["input"] == {"a": 1}
    assert out["usage"] == {"input_tokens": 6, "output_tokens": 8, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0,
                            "output_tokens_details": {"thinking_tokens": 3}}  # thoughtsTokenCount (issue 14, item 10)
    # Deterministic ids.
    assert gemini_response_to_ir(resp, "m")["content"][3]["id"] == out["content"][3]["id"]


@pytest.mark.parametrize(
    "finish, expected",
    [("STOP", "end_turn"), ("MAX_TOKENS", "max_tokens"), ("SAFETY", "refusal"), ("RECITATION", "refusal"),
     ("PROHIBITED_CONTENT", "refusal"), ("BLOCKLIST", "refusal"), ("OTHER", "end_turn")],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    out = gemini_response_to_ir({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": finish}]}, "m")
    assert out["stop_reason"] == expected
    Message.model_validate(out)


def test_prompt_block_response() -> None:
    out = gemini_response_to_ir({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}, "m")
    Message.model_validate(out)
    assert out["stop_reason"] == "refusal" and out["content"] == []
    assert out["stop_details"]["type"] == "refusal"


# -- requests


def test_request_mapping() -> None:
    body = {
        "model": "ignored",
        "max_tokens": 2048,
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END"],
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather",
                "input_schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "city": {"type": "string", "format": "hostname"},
                        "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                        "when": {"$ref": "#/$defs/when"},
                    },
                    "required": ["city", "missing"],
                    "$defs": {"when": {"type": "string", "format": "date-time"}},
                },
            },
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.webp?x=1"}},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": [{"type": "text", "text": "boom"}]}]},
        ],
    }
    out = ir_request_to_gemini(body)
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["generationConfig"] == {
        "maxOutputTokens": 2048, "temperature": 0.3, "topP": 0.9, "topK": 40, "stopSequences": ["END"],
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    (decl,) = out["tools"][0]["functionDeclarations"]
    assert decl["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]},
            "when": {"type": "string", "format": "date-time"},
        },
        "required": ["city"],
    }
    assert out["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/a.webp?x=1"}},
    ]
    assert out["contents"][1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}
    assert out["contents"][2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"error": "boom"}}}]
    assert "model" not in out


@pytest.mark.parametrize("choice, mode", [("auto", "AUTO"), ("any", "ANY"), ("none", "NONE")])
def test_tool_choice_modes(choice: str, mode: str) -> None:
    out = ir_request_to_gemini(
        {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
         "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": choice}}
    )
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": mode}}
    assert out["tools"] == [{"functionDeclarations": [{"name": "f"}]}]


def test_response_format() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    out = ir_request_to_gemini({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                                "_response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": True}}})
    assert out["generationConfig"]["responseMimeType"] == "application/json"
    assert out["generationConfig"]["responseSchema"] == {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    out = ir_request_to_gemini({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "_response_format": {"type": "json_object"}})
    assert out["generationConfig"] == {"maxOutputTokens": 5, "responseMimeType": "application/json"}


def test_mid_conversation_system_and_merging() -> None:
    out = ir_request_to_gemini({"max_tokens": 5, "system": "A", "messages": [
        {"role": "user", "content": "x"}, {"role": "system", "content": "B"}, {"role": "user", "content": "y"}]})
    assert out["systemInstruction"] == {"parts": [{"text": "A\n\nB"}]}
    assert out["contents"] == [{"role": "user", "parts": [{"text": "x"}, {"text": "y"}]}]


@pytest.mark.parametrize("body, param", [
    ({"messages": "x"}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}]}, "messages[0].content[0].tool_use_id"),
    ({"messages": [{"role": "user", "content": [{"type": "bogus"}]}]}, "messages[0].content[0].type"),
])
def test_invalid_requests(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        ir_request_to_gemini(body)
    assert e.value.param == param


def test_clean_schema_recursive_ref_is_bounded() -> None:
    schema = {"type": "object", "properties": {"n": {"$ref": "#"}}}
    out = clean_schema(schema)
    assert out["type"] == "object"
    json.dumps(out)


def test_partial_arg_values() -> None:
    args: dict[str, Any] = {}
    apply_partial_arg(args, {"jsonPath": "$.a[1].b", "numberValue": 3.0})
    apply_partial_arg(args, {"jsonPath": "$.c", "boolValue": True})
    apply_partial_arg(args, {"jsonPath": "$.d", "nullValue": "NULL_VALUE"})
    apply_partial_arg(args, {"jsonPath": "$['e f']", "stringValue": "x"})
    apply_partial_arg(args, {"jsonPath": "$['e f']", "stringValue": "y"})
    assert args == {"a": [None, {"b": 3}], "c": True, "d": None, "e f": "xy"}


# -- properties

_text = st.text(min_size=1, max_size=30).filter(lambda s: s.strip())
_name = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def ir_requests(draw: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(st.one_of(_text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, _text), min_size=1, max_size=3)))})
        if draw(st.booleans()):
            tool_id = f"toolu_{i}"
            messages.append({"role": "assistant", "content": [
                {"type": "thinking", "thinking": draw(st.text(max_size=10)), "signature": draw(st.text(max_size=10))},
                {"type": "text", "text": draw(_text)},
                {"type": "tool_use", "id": tool_id, "name": draw(_name), "input": draw(st.dictionaries(_name, _json, max_size=3))},
            ]})
            messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": draw(st.text(max_size=20))}]})
    body: dict[str, Any] = {"max_tokens": draw(st.integers(1, 10000)), "messages": messages}
    if draw(st.booleans()):
        body["tools"] = [{"name": draw(_name), "input_schema": {"type": "object", "properties": draw(st.dictionaries(_name, st.just({"type": "string"}), max_size=3))}}]
        body["tool_choice"] = {"type": draw(st.sampled_from(["auto", "any", "none"]))}
    if draw(st.booleans()):
        body["thinking"] = {"type": "enabled", "budget_tokens": draw(st.integers(1024, 4096))}
    return body


@settings(max_examples=150, deadline=None)
@given(ir_requests())
def test_request_conversion_never_crashes(body: dict[str, Any]) -> None:
    out = ir_request_to_gemini(body)
    json.dumps(out)
    assert all(c["role"] in ("user", "model") and c["parts"] for c in out["contents"])


@settings(max_examples=150, deadline=None)
@given(_text, st.dictionaries(_name, _json, max_size=4), st.booleans())
def test_text_and_arguments_survive_gemini_round_trip(text: str, args: dict[str, Any], stream: bool) -> None:
    """IR assistant turn -> Gemini parts -> Gemini response -> IR: text and tool input unchanged."""
    turn = {"role": "assistant", "content": [{"type": "text", "text": text}, {"type": "tool_use", "id": "toolu_x", "name": "f", "input": args}]}
    contents = ir_request_to_gemini({"max_tokens": 1, "messages": [{"role": "user", "content": "q"}, turn]})["contents"]
    resp = {"candidates": [{"content": contents[1], "finishReason": "STOP"}]}
    if stream:
        conv = GeminiToAnthropicStream("m", message_id="msg_x")
        message = accumulate(conv.feed(resp) + conv.finish())
    else:
        message = gemini_response_to_ir(resp, "m")
    assert message["content"][0] == {"type": "text", "text": text}
    assert message["content"][1]["input"] == args
    assert message["stop_reason"] == "tool_use"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6))
def test_streamed_string_pieces_concatenate(pieces: list[str]) -> None:
    conv = GeminiToAnthropicStream("m", message_id="msg_x")
    events = conv.feed({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "willContinue": True}}]}}]})
    for piece in pieces:
        events += conv.feed({"candidates": [{"content": {"parts": [{"functionCall": {"partialArgs": [{"jsonPath": "$.s", "stringValue": piece, "willContinue": True}], "willContinue": True}}]}}]})
    events += conv.feed({"candidates": [{"content": {"parts": [{"functionCall": {}}]}, "finishReason": "STOP"}]})
    events += conv.finish()
    assert accumulate(events)["content"][0]["input"] == {"s": "".join(pieces)}


def test_lost_signatures_get_the_placeholder_on_gemini_3_only() -> None:
    body = {"max_tokens": 5, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "1"},
                                     {"type": "tool_result", "tool_use_id": "b", "content": "2"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": "gemini:REAL"},
            {"type": "tool_use", "id": "c", "name": "f", "input": {}}]},
    ]}
    out = ir_request_to_gemini(body, model="gemini-3-pro-preview")
    first, second = out["contents"][1]["parts"], out["contents"][3]["parts"]
    assert first[0]["thoughtSignature"] == "skip_thought_signature_validator" and "thoughtSignature" not in first[1]
    assert second == [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "REAL"}]
    for other in (None, "gemini-2.5-pro"):
        plain = ir_request_to_gemini(body, model=other)
        assert "thoughtSignature" not in plain["contents"][1]["parts"][0]


def test_mid_stream_error_chunk() -> None:
    conv = GeminiToAnthropicStream("m", message_id="msg_x")
    events = conv.feed({"candidates": [{"content": {"parts": [{"text": "a"}]}}]})
    events += conv.feed({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}})
    assert events[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "Resource exhausted"}}
    assert events[-2] == {"type": "content_block_stop", "index": 0}
    assert conv.finish() == []
    for event in events[:-1]:
        EVENT.validate_python(event)
    ErrorResponse.model_validate(events[-1])




_schema_keys = st.sampled_from(["type", "properties", "items", "required", "enum", "const", "format", "anyOf", "oneOf",
                                "allOf", "$ref", "additionalProperties", "$schema", "nullable", "description", "default"])
_schema = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.sampled_from(["string", "object", "array", "null", "#", "#/$defs/x", "date-time", "int64"])
    | st.lists(st.sampled_from(["string", "null", "integer"]), max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_schema_keys | st.text(max_size=4), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_schema)
def test_clean_schema_never_raises(schema: Any) -> None:
    out = clean_schema(schema)
    json.dumps(out)
    assert isinstance(out, dict) and "$schema" not in out and "additionalProperties" not in out


_sig = st.one_of(st.none(), st.text(min_size=1, max_size=6))


@st.composite
def gemini_part(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "thought", "call", "start", "partial", "cont", "end"]))
    part: dict[str, Any]
    if kind == "text":
        part = {"text": draw(st.text(max_size=6))}
    elif kind == "thought":
        part = {"text": draw(st.text(max_size=6)), "thought": True}
    elif kind == "call":
        part = {"functionCall": {"name": draw(_name), "args": draw(st.dictionaries(_name, _json, max_size=2))}}
    elif kind == "start":
        part = {"functionCall": {"name": draw(_name), "willContinue": True}}
    elif kind == "partial":
        value = draw(st.one_of(
            st.builds(lambda v: {"stringValue": v}, st.text(max_size=4)),
            st.builds(lambda v: {"numberValue": v}, st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)),
            st.builds(lambda v: {"boolValue": v}, st.booleans()),
            st.just({"nullValue": "NULL_VALUE"}),
        ))
        path = draw(st.sampled_from(["$.a", "$.a.b", "$.l[0]", "$.l[2].x", "$['q r']", "$", "bad", "$.a[0]"]))
        part = {"functionCall": {"partialArgs": [{"jsonPath": path, **value}], "willContinue": draw(st.booleans())}}
    elif kind == "cont":
        part = {"functionCall": {"willContinue": True}}
    else:
        part = {"functionCall": {}}
    sig = draw(_sig)
    if sig:
        part["thoughtSignature"] = sig
    return part


@st.composite
def gemini_chunk(draw: Any) -> dict[str, Any]:
    chunk: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": draw(st.lists(gemini_part(), max_size=3))}}]}
    if draw(st.integers(0, 5)) == 0:
        chunk["candidates"][0]["finishReason"] = draw(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]))
    if draw(st.booleans()):
        chunk["usageMetadata"] = {"promptTokenCount": draw(st.integers(0, 50)), "candidatesTokenCount": draw(st.integers(0, 50))}
    if draw(st.integers(0, 20)) == 0:
        chunk = {"promptFeedback": {"blockReason": "SAFETY"}}
    return chunk


@settings(max_examples=150, deadline=None)
@given(st.lists(gemini_chunk(), max_size=8))
def test_any_gemini_stream_gives_a_valid_anthropic_stream(stream_chunks: list[dict[str, Any]]) -> None:
    conv = GeminiToAnthropicStream("m", message_id="msg_x")
    events = [e for chunk in stream_chunks for e in conv.feed(chunk)] + conv.finish()
    message = accumulate(events)
    # The non-stream converter agrees on the content of a single chunk.
    for chunk in stream_chunks[:1]:
        Message.model_validate(gemini_response_to_ir(chunk, "m"))
    # Every signature survives, in order.
    sigs = [p["thoughtSignature"] for c in stream_chunks for cand in c.get("candidates", []) for p in cand["content"]["parts"] if p.get("thoughtSignature")]
    got = [b["signature"] for b in message["content"] if b["type"] == "thinking" and b["signature"]]
    assert "".join(got) == "".join(mark(s) for s in sigs)


@settings(max_examples=100, deadline=None)
@given(ir_requests())
def test_requests_pass_the_simulators_vertex_validation(body: dict[str, Any]) -> None:
    from sapproxy.simulator.vertex_api import validate

    assert validate(ir_request_to_gemini(body, model="gemini-3-pro-preview")) is None
