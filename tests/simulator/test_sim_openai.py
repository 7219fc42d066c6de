"""Azure OpenAI chat completions and embeddings as served for kind=openai deployments."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from simhelp import Driver, sse_events, sse_json, user

CHAT = "chat/completions?api-version=2024-10-21"
CHAT_NEW = "chat/completions?api-version=2025-04-01-preview"

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                     "metric": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["city", "days", "metric"]}}}


def test_sim_chat_non_stream_shape() -> None:
    d = Driver()
    r = d.post("d-gpt41", CHAT, user("hello world"))
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4.1-2025-04-14"
    assert body["id"].startswith("chatcmpl-")
    assert body["system_fingerprint"].startswith("fp_")
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == ("Echo: hello world bravo charlie delta echo foxtrot golf hotel")
    usage = body["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_sim_chat_stream_events_in_order() -> None:
    d = Driver()
    body = {**user("hi #sim{\"events\": 3}"), "stream": True}
    r = d.post("d-gpt41", CHAT, body)
    assert r.status == 200
    assert r.header("content-type") == "text/event-stream; charset=utf-8"
    assert r.header("content-length") is None
    events = sse_events(r.body)
    assert [data for _, data in events].count("[DONE]") == 1
    assert events[-1] == (None, "[DONE]")
    chunks = sse_json(r.body)
    first = chunks[0]
    assert first["choices"] == [] and first["id"] == "" and first["model"] == "" and first["created"] == 0
    assert "prompt_filter_results" in first
    assert chunks[1]["choices"][0]["delta"] == {"content": "", "refusal": None, "role": "assistant"}
    deltas = [c["choices"][0]["delta"]["content"] for c in chunks[2:5]]
    assert deltas == ["Echo: hi", " bravo", " charlie"]
    assert chunks[5]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"][0]["delta"] == {}
    assert len(chunks) == 6  # no usage chunk without include_usage
    assert all(c["object"] == "chat.completion.chunk" and c["usage"] is None for c in chunks[1:])


def test_sim_chat_stream_usage_only_with_include_usage() -> None:
    d = Driver()
    body = {**user("hi #sim{\"events\": 3}"), "stream": True, "stream_options": {"include_usage": True}}
    chunks = sse_json(d.post("d-gpt41", CHAT, body).body)
    assert chunks[-1]["choices"] == []
    non_stream = d.post("d-gpt41", CHAT, user("hi #sim{\"events\": 3}")).json()
    assert chunks[-1]["usage"] == non_stream["usage"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == non_stream["choices"][0]["message"]["content"]
    body["stream_options"] = {"include_usage": False}
    assert sse_json(d.post("d-gpt41", CHAT, body).body)[-1]["choices"] != []


def test_sim_reasoning_model_api_version_and_params() -> None:
    d = Driver()
    r = d.post("d-gpt5", CHAT, user("hi"))
    assert r.status == 400
    assert r.json()["error"]["code"] == "BadRequest"
    assert "2024-12-01-preview" in r.json()["error"]["message"]
    r = d.post("d-o3", CHAT_NEW, {**user("hi"), "max_tokens": 10})
    assert r.status == 400
    assert r.json()["error"] == {"code": "unsupported_parameter", "param": "max_tokens", "type":
                                 "invalid_request_error", "message": r.json()["error"]["message"]}
    r = d.post("d-gpt5", CHAT_NEW, {**user("hi"), "max_completion_tokens": 10})
    assert r.status == 200
    usage = r.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert r.json()["model"] == "gpt-5-2025-08-07"


def test_sim_chat_validation() -> None:
    d = Driver()
    r = d.post("d-gpt41", "chat/completions", user("hi"))
    assert r.status == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
    r = d.post("d-gpt41", CHAT, {"messages": []})
    assert r.status == 400 and r.json()["error"]["param"] == "messages"
    assert set(r.json()["error"]) == {"code", "message", "param", "type"}
    r = d.post("d-gpt41", CHAT, {"messages": [{"role": "wizard", "content": "x"}]})
    assert r.status == 400 and r.json()["error"]["param"] == "messages[0].role"
    r = d.post("d-gpt41", CHAT, {})
    assert r.status == 400 and r.json()["error"]["code"] == "missing_required_parameter"
    r = d.post("d-gpt41", CHAT, {**user("hi"), "stream_options": {"include_usage": True}})
    assert r.status == 400 and r.json()["error"]["param"] == "stream_options"


def test_sim_chat_tool_call_non_stream() -> None:
    d = Driver()
    r = d.post("d-gpt41", CHAT, {**user("weather?"), "tools": [TOOL]})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "sample", "days": 1, "metric": True}


def test_sim_chat_tool_choice_none_and_tool_result() -> None:
    d = Driver()
    r = d.post("d-gpt41", CHAT, {**user("weather?"), "tools": [TOOL], "tool_choice": "none"})
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    r = d.post("d-gpt41", CHAT, {"messages": messages, "tools": [TOOL]})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "sunny, 21C" in choice["message"]["content"]


def test_sim_chat_tool_call_stream_two_parallel() -> None:
    d = Driver()
    body = {**user("weather? #sim{\"tool_calls\": 2}"), "tools": [TOOL], "stream": True,
            "parallel_tool_calls": True}
    chunks = sse_json(d.post("d-gpt41", CHAT, body).body)
    deltas = [c["choices"][0]["delta"] for c in chunks[2:-1]]
    starts = [tc for dl in deltas for tc in dl["tool_calls"] if "id" in tc]
    assert [s["index"] for s in starts] == [0, 1]
    assert all(s["function"] == {"arguments": "", "name": "get_weather"} and s["type"] == "function"
               for s in starts)
    args = ["", ""]
    for dl in deltas:
        for tc in dl["tool_calls"]:
            args[tc["index"]] += tc["function"]["arguments"]
    assert [json.loads(a) for a in args] == [{"city": "sample", "days": 1, "metric": True}] * 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_sim_embeddings_float_and_base64() -> None:
    d = Driver()
    r = d.post("d-embed", "embeddings?api-version=2024-10-21", {"input": ["a", "b"]})
    assert r.status == 200
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == 2
    assert [e["index"] for e in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 8
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    r2 = d.post("d-embed", "embeddings?api-version=2024-10-21",
                {"input": "a", "dimensions": 256, "encoding_format": "base64"})
    raw = base64.b64decode(r2.json()["data"][0]["embedding"])
    assert len(raw) == 256 * 4
    floats = list(struct.unpack("<256f", raw))
    again = d.post("d-embed", "embeddings?api-version=2024-10-21", {"input": "a", "dimensions": 256}).json()
    assert floats == again["data"][0]["embedding"]
    assert d.post("d-embed", "embeddings?api-version=2024-10-21", {"input": ""}).status == 400
