"""
Property tests for the OpenAI converters: on generated schema-valid input they raise nothing but
InvalidRequest, their output validates against the SDK types, and text and tool arguments survive request
and stream round trips.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import CompletionCreateParams
from pydantic import TypeAdapter

from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.client.openai_chat import AnthropicToOpenAIStream, chat_request_to_ir, ir_response_to_chat
from sapproxy.translate.wire.openai_chat import OpenAIToAnthropicStream, chat_response_to_ir, ir_request_to_chat
from test_tr_openai_support import (
    accumulate_anthropic,
    accumulate_openai,
    check_chunks,
    check_completion,
    check_events,
    check_message,
    sdk_final_completion,
    sdk_final_message,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(max_size=40)
nonempty = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
ident = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), text)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ident, inner, max_size=3), max_leaves=8)
json_object = st.dictionaries(ident, json_value, max_size=4)
call_id = st.one_of(st.from_regex(r"call_[A-Za-z0-9]{8}", fullmatch=True), st.from_regex(r"toolu_[A-Za-z0-9]{8}", fullmatch=True))


# ------------------------------------------------------------------------------------------- OpenAI requests

text_part = st.builds(lambda t: {"type": "text", "text": t}, text)
image_part = st.sampled_from(
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
    ]
)
user_content = st.one_of(text, st.lists(st.one_of(text_part, image_part), min_size=1, max_size=3))


@st.composite
def tool_call(draw: Any) -> dict[str, Any]:
    args = draw(json_object)
    return {"id": draw(call_id), "type": "function", "function": {"name": draw(ident), "arguments": json.dumps(args)}}


system_msg = st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "developer"]), st.one_of(text, st.lists(text_part, max_size=2)))
user_msg = st.builds(lambda c: {"role": "user", "content": c}, user_content)
assistant_msg = st.builds(
    lambda c, calls: {"role": "assistant", "content": c, **({"tool_calls": calls} if calls else {})},
    st.one_of(st.none(), text),
    st.lists(tool_call(), max_size=3),
)
tool_msg = st.builds(lambda i, c: {"role": "tool", "tool_call_id": i, "content": c}, call_id, st.one_of(text, st.lists(text_part, min_size=1, max_size=2)))
tool_def = st.builds(
    lambda n, d, p: {"type": "function", "function": {"name": n, **({"description": d} if d is not None else {}), **({"parameters": p} if p is not None else {})}},
    ident,
    st.one_of(st.none(), text),
    st.one_of(st.none(), st.just({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]})),
)


@st.composite
def chat_request(draw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": draw(st.lists(st.one_of(system_msg, user_msg, assistant_msg, tool_msg), min_size=1, max_size=6)),
    }
    if draw(st.booleans()):
        body["tools"] = draw(st.lists(tool_def, min_size=1, max_size=3))
        body["tool_choice"] = draw(st.sampled_from(["auto", "none", "required", {"type": "function", "function": {"name": "x"}}]))
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    for key, strategy in (
        ("max_tokens", st.integers(1, 100000)),
        ("max_completion_tokens", st.integers(1, 100000)),
        ("temperature", st.floats(0, 2)),
        ("top_p", st.floats(0, 1)),
        ("stop", st.one_of(text, st.lists(text, max_size=4))),
        ("reasoning_effort", st.sampled_from(["minimal", "low", "medium", "high"])),
        ("user", text),
        ("stream", st.booleans()),
        ("n", st.just(1)),
        ("response_format", st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}])),
    ):
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def _texts_of(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content if p.get("type") == "text"]


@SETTINGS
@given(chat_request(), st.booleans())
def test_request_round_trip(body: dict[str, Any], reasoning_model: bool) -> None:
    try:
        ir = chat_request_to_ir(body)
    except InvalidRequest:
        return
    back = ir_request_to_chat(json.loads(json.dumps(ir)), reasoning_model=reasoning_model)
    assert isinstance(back["messages"], list)
    # Every text, tool call and tool result survives, in the role it was sent in.
    flat = {"system": [], "user": [], "assistant": [], "tool": []}  # type: dict[str, list[str]]
    calls: list[dict[str, Any]] = []
    for message in back["messages"]:
        role = "system" if message["role"] in ("system", "developer") else message["role"]
        flat[role].extend(_texts_of(message.get("content")))
        calls.extend(message.get("tool_calls") or ())
    joined = {role: "\n".join(texts) for role, texts in flat.items()}
    for message in body["messages"]:
        role = "system" if message["role"] in ("system", "developer") else message["role"]
        for t in _texts_of(message.get("content")):
            if t.strip():  # whitespace-only texts are dropped on purpose
                assert t in joined[role]
        for call in message.get("tool_calls") or ():
            assert any(
                c["id"] == call["id"]
                and c["function"]["name"] == call["function"]["name"]
                and json.loads(c["function"]["arguments"]) == json.loads(call["function"]["arguments"])
                for c in calls
            )
        if message["role"] == "tool":
            assert any(m["role"] == "tool" and m["tool_call_id"] == message["tool_call_id"] for m in back["messages"])
    if body.get("response_format", {}).get("type") == "json_schema":
        assert back["response_format"] == body["response_format"]


# ------------------------------------------------------------------------------------------- IR streams


def _split(s: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(s) + 1) for c in cuts} | {0, len(s)})
    return [s[a:b] for a, b in zip(points, points[1:])]


@st.composite
def ir_stream(draw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events, blocks): a well-formed Anthropic stream, with pings and the odd unknown event."""
    blocks: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01" + draw(st.from_regex(r"[A-Za-z0-9]{10}", fullmatch=True)),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-x",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": draw(st.integers(0, 999)), "output_tokens": 1, "cache_read_input_tokens": draw(st.integers(0, 99))},
            },
        }
    ]
    if draw(st.booleans()):
        events.append(dict(events[0]))  # duplicate message_start
    kinds = draw(st.lists(st.sampled_from(["text", "thinking", "tool_use"]), max_size=4))
    for index, kind in enumerate(kinds):
        cuts = draw(st.lists(st.integers(0, 1000), max_size=4))
        if kind == "text":
            body = draw(text)
            blocks.append({"type": "text", "text": body})
            events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}} for p in _split(body, cuts)]
        elif kind == "thinking":
            body = draw(text)
            signature = draw(st.from_regex(r"[A-Za-z0-9+/]{4,40}={0,2}", fullmatch=True))
            blocks.append({"type": "thinking", "thinking": body, "signature": signature})
            events.append({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": p}} for p in _split(body, cuts)]
            events.append({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": signature}})
        else:
            args = json.dumps(draw(json_object))
            block = {"type": "tool_use", "id": draw(call_id), "name": draw(ident), "input": json.loads(args)}
            blocks.append(block)
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            events.append({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}} for p in _split(args, cuts)]
        if draw(st.booleans()):
            events.append({"type": "ping"})
        events.append({"type": "content_block_stop", "index": index})
    stop = draw(st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal", "pause_turn"]))
    if draw(st.booleans()):
        events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": draw(st.integers(1, 999))}})
    if draw(st.booleans()):
        events.append({"type": "future_event", "data": {}})
    if draw(st.booleans()):
        events.append({"type": "message_stop"})
    return events, blocks


@SETTINGS
@given(ir_stream(), st.booleans())
def test_stream_round_trip(stream: tuple[list[dict[str, Any]], list[dict[str, Any]]], include_usage: bool) -> None:
    events, blocks = stream
    to_openai = AnthropicToOpenAIStream("gpt-4o", completion_id="chatcmpl-1", created=1, include_usage=include_usage)
    chunks: list[dict[str, Any]] = []
    for event in events:
        chunks += to_openai.feed(event)
    chunks += to_openai.finish()
    check_chunks(chunks)
    got = accumulate_openai(chunks)
    assert got["text"] == "".join(b["text"] for b in blocks if b["type"] == "text")
    assert got["reasoning"] == "".join(b["thinking"] for b in blocks if b["type"] == "thinking")
    tools = [b for b in blocks if b["type"] == "tool_use"]
    assert [(c["id"], c["name"], json.loads(c["arguments"] or "{}")) for c in got["tool_calls"]] == [(b["id"], b["name"], b["input"]) for b in tools]
    assert [(b["thinking"], b["signature"]) for b in got["thinking_blocks"]] == [(b["thinking"], b["signature"]) for b in blocks if b["type"] == "thinking" and (b["thinking"] or b["signature"])]

    # And back again: the Anthropic client of a GPT upstream sees the same text and tool calls.
    to_anthropic = OpenAIToAnthropicStream("claude-x")
    back: list[dict[str, Any]] = []
    for chunk in chunks:
        back += to_anthropic.feed(chunk)
    back += to_anthropic.finish()
    check_events(back)
    final = sdk_final_message(back)
    assert [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"] == [(b["id"], b["name"], b["input"]) for b in tools]
    completion = sdk_final_completion(chunks)
    assert (completion.choices[0].message.content or "") == got["text"]
    again = accumulate_anthropic(back)
    assert again["text"] == got["text"]
    assert again["thinking"] == got["reasoning"]
    assert [(c["id"], c["name"], json.loads(c["arguments"] or "{}")) for c in again["tool_calls"]] == [(b["id"], b["name"], b["input"]) for b in tools]
    if include_usage and to_openai.usage is not None:
        assert again["usage"]["output_tokens"] == to_openai.usage.completion_tokens


# ------------------------------------------------------------------------------------------- OpenAI chunk streams


@st.composite
def chunk_stream(draw: Any) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    if draw(st.booleans()):
        chunks.append({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []})
    for _ in range(draw(st.integers(0, 12))):
        delta: dict[str, Any] = {}
        kind = draw(st.sampled_from(["content", "reasoning_content", "tool", "role", "refusal", "empty"]))
        if kind in ("content", "reasoning_content", "refusal"):
            delta[kind] = draw(st.one_of(st.none(), text))
        elif kind == "tool":
            call: dict[str, Any] = {"index": draw(st.integers(0, 2))}
            if draw(st.booleans()):
                call["id"] = draw(call_id)
                call["type"] = "function"
            call["function"] = {"arguments": draw(text)}
            if draw(st.booleans()):
                call["function"]["name"] = draw(ident)
            delta["tool_calls"] = [call]
        elif kind == "role":
            delta = {"role": "assistant", "content": "", "refusal": None}
        chunks.append(
            {
                "id": "chatcmpl-X",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None, "content_filter_results": {}}],
                "obfuscation": "abc",
            }
        )
    if draw(st.booleans()):
        finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", "function_call"]))
        chunks.append({"id": "chatcmpl-X", "object": "chat.completion.chunk", "created": 1, "model": "gpt", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if draw(st.booleans()):
        chunks.append({"id": "chatcmpl-X", "object": "chat.completion.chunk", "created": 1, "model": "gpt", "choices": [], "usage": {"prompt_tokens": draw(st.integers(0, 99)), "completion_tokens": draw(st.integers(0, 99))}})
    if draw(st.booleans()):
        chunks.append({"error": {"message": "boom", "type": "server_error"}})
    return chunks


@SETTINGS
@given(chunk_stream())
def test_openai_chunks_always_give_valid_events(chunks: list[dict[str, Any]]) -> None:
    stream = OpenAIToAnthropicStream("claude-x")
    events: list[dict[str, Any]] = []
    for chunk in chunks:
        events += stream.feed(chunk)
    events += stream.finish()
    check_events(events)
    source = accumulate_openai(chunks)
    got = accumulate_anthropic(events)
    assert got["text"] == "".join(
        (c["choices"][0]["delta"].get("content") or "") + (c["choices"][0]["delta"].get("refusal") or "")
        for c in chunks
        if c.get("choices")
    )
    # Blocks follow the order in which calls first appear, OpenAI's list follows their index.
    assert sorted(c["arguments"] for c in got["tool_calls"]) == sorted(c["arguments"] for c in source["tool_calls"])


# ------------------------------------------------------------------------------------------- non-streamed responses


@SETTINGS
@given(ir_stream())
def test_responses_validate_both_ways(stream: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    events, blocks = stream
    message = {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": blocks,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 7},
    }
    check_message(message)
    completion = ir_response_to_chat(message, "gpt-4o", created=1)
    check_completion(completion)
    back = chat_response_to_ir(completion, "claude")
    check_message(back)
    assert "".join(b["text"] for b in back["content"] if b["type"] == "text") == "".join(b["text"] for b in blocks if b["type"] == "text")
    assert [(b["id"], b["name"], b["input"]) for b in back["content"] if b["type"] == "tool_use"] == [
        (b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"
    ]
    assert back["usage"] == {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 0}


# ------------------------------------------------------------------------------------------- IR requests to GPT

ir_text = st.builds(lambda t: {"type": "text", "text": t}, nonempty)
ir_image = st.sampled_from(
    [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
)
ir_doc = st.just({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
ir_result = st.builds(
    lambda i, c, e: {"type": "tool_result", "tool_use_id": i, "content": c, **({"is_error": e} if e is not None else {})},
    call_id,
    st.one_of(text, st.lists(st.one_of(ir_text, ir_image), max_size=2)),
    st.one_of(st.none(), st.booleans()),
)
ir_tool_use = st.builds(lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a}, call_id, ident, json_object)
ir_thinking = st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, text, nonempty)


# The SDK's request TypedDict, checked through pydantic (built once: it is slow to build).
_PARAMS: TypeAdapter[Any] = TypeAdapter(CompletionCreateParams)


@st.composite
def ir_request(draw: Any) -> dict[str, Any]:
    messages = []
    for i in range(draw(st.integers(1, 5))):
        if i % 2 == 0:
            content = draw(st.one_of(nonempty, st.lists(st.one_of(ir_text, ir_image, ir_doc, ir_result), min_size=1, max_size=4)))
            messages.append({"role": "user", "content": content})
        else:
            content = draw(st.one_of(nonempty, st.lists(st.one_of(ir_text, ir_tool_use, ir_thinking), min_size=1, max_size=4)))
            messages.append({"role": "assistant", "content": content})
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": draw(st.integers(1, 64000)), "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(st.one_of(text, st.lists(st.builds(lambda t: {"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}, text), max_size=2)))
    if draw(st.booleans()):
        body["tools"] = [{"name": n, "description": "d", "input_schema": {"type": "object", "properties": {}}} for n in draw(st.lists(ident, min_size=1, max_size=3, unique=True))]
        body["tool_choice"] = draw(st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": body["tools"][0]["name"]}, {"type": "auto", "disable_parallel_tool_use": True}]))
    for key, strategy in (
        ("temperature", st.floats(0, 1)),
        ("top_p", st.floats(0, 1)),
        ("top_k", st.integers(1, 100)),
        ("stop_sequences", st.lists(nonempty, max_size=4)),  # more is refused (test_tr_audit.py)
        ("thinking", st.builds(lambda b: {"type": "enabled", "budget_tokens": b}, st.integers(1024, 32000))),
        ("metadata", st.builds(lambda u: {"user_id": u}, text)),
        ("stream", st.booleans()),
    ):
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@SETTINGS
@given(ir_request(), st.booleans())
def test_ir_requests_convert_for_gpt(body: dict[str, Any], reasoning_model: bool) -> None:
    out = ir_request_to_chat(body, reasoning_model=reasoning_model)
    _PARAMS.validate_python({**out, "model": "gpt-4o"})
    # Every tool_use keeps its id, name and input; every tool result its id, and follows its call.
    calls = [c for m in out["messages"] for c in m.get("tool_calls") or ()]
    sent = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [(b["id"], b["name"], b["input"]) for b in sent]
    results = [m["tool_call_id"] for m in out["messages"] if m["role"] == "tool"]
    assert results == [b["tool_use_id"] for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"]
    if reasoning_model:
        assert not {"temperature", "top_p", "stop", "max_tokens"} & set(out)
    if body.get("stream"):
        assert out["stream_options"] == {"include_usage": True}


# ------------------------------------------------------------------------------------------- garbage in

any_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        text,
        # The words the converters branch on, so that generated garbage gets past the first check.
        st.sampled_from(["user", "assistant", "tool", "system", "developer", "function", "text", "image_url", "file", "refusal", "tool_use", "tool_result", "image", "document", "thinking", "redacted_thinking", "base64", "url", "auto", "any", "none", "required", "enabled", "json_schema", "json_object", "data:image/png;base64,AAAA", "https://x", "{}", "{\"a\": 1}"]),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "type", "text", "tool_calls", "function", "name", "arguments", "id", "tool_call_id", "image_url", "url", "source", "input", "tool_use_id", "thinking_blocks", "signature", "data", "file", "file_data"]), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, path + (index,))
    return found


@st.composite
def mutated(draw: Any, valid: Any) -> dict[str, Any]:
    """A valid body with one to three of its nodes (anywhere, however deep) replaced by arbitrary JSON."""
    body = json.loads(json.dumps(draw(valid)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(body) if p]
        path = draw(st.sampled_from(paths))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(any_json)
    return body


@settings(max_examples=200, deadline=None)
@given(mutated(chat_request()))
def test_garbage_chat_requests_raise_only_invalid_request(body: dict[str, Any]) -> None:
    try:
        chat_request_to_ir(body)
    except InvalidRequest:
        pass


@settings(max_examples=200, deadline=None)
@given(mutated(ir_request()), st.booleans())
def test_garbage_ir_requests_raise_only_invalid_request(body: dict[str, Any], reasoning_model: bool) -> None:
    try:
        ir_request_to_chat(body, reasoning_model=reasoning_model)
    except InvalidRequest:
        pass
