"""Bedrock InvokeModel / InvokeModelWithResponseStream for Anthropic models, in both stream framings."""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

from botocore.eventstream import EventStreamBuffer

from conftest import fixture_path
from sapproxy.simulator.eventstream import chunk_frame, exception_frame
from sapproxy.simulator.textgen import thinking_signature
from simhelp import Driver, sse_events

VERSION = "bedrock-2023-05-31"
TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"anthropic_version": VERSION, "max_tokens": 4096,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], **extra}


def decode_frames(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(raw)
    return [(dict(m.headers), m.payload) for m in buf]


def anthropic_events_from_eventstream(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for headers, payload in decode_frames(raw):
        assert headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
        out.append(json.loads(base64.b64decode(json.loads(payload)["bytes"])))
    return out


def test_sim_bedrock_invoke_shape() -> None:
    d = Driver()
    r = d.post("d-sonnet", "invoke", body("hello #sim{\"events\": 3}"))
    assert r.status == 200, r.body
    msg = r.json()
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["model"] == "claude-sonnet-4-5-20250929"
    assert msg["id"].startswith("msg_bdrk_")
    assert msg["content"] == [{"type": "text", "text": "Echo: hello bravo charlie"}]
    assert msg["stop_reason"] == "end_turn" and msg["stop_sequence"] is None
    assert set(msg["usage"]) == {"input_tokens", "output_tokens", "cache_creation_input_tokens",
                                 "cache_read_input_tokens"}
    assert r.header("x-amzn-bedrock-output-token-count") == str(msg["usage"]["output_tokens"])


def test_sim_bedrock_stream_eventstream_frames() -> None:
    d = Driver()
    r = d.post("d-sonnet", "invoke-with-response-stream", body("hello #sim{\"events\": 3}"))
    assert r.status == 200
    assert r.header("content-type") == "application/vnd.amazon.eventstream"
    events = anthropic_events_from_eventstream(r.body)
    types = [e["type"] for e in events]
    assert types == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == \
        ["Echo: hello", " bravo", " charlie"]
    assert events[0]["message"]["usage"]["output_tokens"] == 1
    non_stream = d.post("d-sonnet", "invoke", body("hello #sim{\"events\": 3}")).json()
    assert events[-2]["usage"]["output_tokens"] == non_stream["usage"]["output_tokens"]
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert set(metrics) == {"inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency"}


def test_sim_eventstream_encoder_crcs_and_fixture_shape() -> None:
    frame = chunk_frame({"type": "ping"})
    total, headers_len = struct.unpack(">II", frame[:8])
    assert total == len(frame)
    assert struct.unpack(">I", frame[8:12])[0] == binascii.crc32(frame[:8])
    assert struct.unpack(">I", frame[-4:])[0] == binascii.crc32(frame[:-4])
    recorded = base64.b64decode(fixture_path("bedrock/model-stream-error-exception.eventstream.base64.txt")
                                .read_text())
    mine = exception_frame("modelStreamErrorException", "Model Stream Error")
    assert mine == recorded  # byte for byte, header order included
    assert decode_frames(mine)[0][0][":message-type"] == "exception"


def test_sim_bedrock_stream_sse_framing_for_haiku() -> None:
    d = Driver()
    r = d.post("d-haiku", "invoke-with-response-stream", body("hi #sim{\"events\": 2}"))
    assert r.header("content-type") == "text/event-stream; charset=utf-8"
    events = sse_events(r.body)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping",
                                            "content_block_delta", "content_block_delta", "content_block_stop",
                                            "message_delta", "message_stop"]
    assert events[2][1] == '{"type": "ping"}'
    for name, data in events:
        assert json.loads(data)["type"] == name
    assert json.loads(events[0][1])["message"]["model"] == "claude-haiku-4-5-20251001"


def test_sim_bedrock_thinking_block_signature() -> None:
    d = Driver()
    req = body("think", thinking={"type": "enabled", "budget_tokens": 2048})
    msg = d.post("d-sonnet", "invoke", req).json()
    thinking, text = msg["content"]
    assert thinking["type"] == "thinking"
    assert thinking["signature"] == thinking_signature(thinking["thinking"])
    assert text["type"] == "text"
    events = anthropic_events_from_eventstream(d.post("d-sonnet", "invoke-with-response-stream", req).body)
    assert events[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert "".join(x["thinking"] for x in deltas if x["type"] == "thinking_delta") == thinking["thinking"]
    assert deltas[-1] == {"type": "signature_delta", "signature": thinking["signature"]}
    assert any(e["type"] == "content_block_start" and e["index"] == 1 for e in events)


def test_sim_bedrock_tool_use_stream_and_result() -> None:
    d = Driver()
    events = anthropic_events_from_eventstream(
        d.post("d-sonnet", "invoke-with-response-stream", body("weather?", tools=[TOOL])).body)
    start = events[1]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "get_weather" and start["input"] == {}
    assert start["id"].startswith("toolu_bdrk_")
    partial = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(partial) == {"city": "sample"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    follow = {"anthropic_version": VERSION, "max_tokens": 100, "tools": [TOOL], "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": start["id"], "name": "get_weather",
                                           "input": {"city": "sample"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": start["id"], "content": "rainy"}]}]}
    msg = d.post("d-sonnet", "invoke", follow).json()
    assert msg["stop_reason"] == "end_turn" and "rainy" in msg["content"][0]["text"]


def test_sim_bedrock_validation_rejections() -> None:
    d = Driver()
    cases = [
        ({**body("x"), "model": "claude"}, "extraneous key [model] is not permitted"),
        ({**body("x"), "stream": True}, "extraneous key [stream] is not permitted"),
        ({k: v for k, v in body("x").items() if k != "anthropic_version"}, "required key [anthropic_version]"),
        ({**body("x"), "anthropic_version": "bedrock-2023-05-30"}, "not a valid enum value"),
        (body(""), "text content blocks must be non-empty"),
        (body("x", anthropic_beta=["made-up-2099-01-01"]), "invalid beta flag"),
        (body("x", thinking={"type": "enabled", "budget_tokens": 8192}), "`max_tokens` must be greater"),
        (body("x", tools=[{"name": "t", "inputSchema": {}}]), "extraneous key [inputSchema]"),
        ({**body("x"), "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
         "roles must alternate"),
    ]
    for req, needle in cases:
        r = d.post("d-sonnet", "invoke", req)
        assert r.status == 400, (req, r.body)
        assert r.header("x-amzn-errortype", ).startswith("ValidationException:")  # type: ignore[union-attr]
        assert needle in r.json()["message"], (needle, r.json())
    assert d.post("d-sonnet", "invoke", body("x", anthropic_beta=["context-1m-2025-08-07"])).status == 200


def test_sim_bedrock_cache_usage() -> None:
    d = Driver()
    req = body("hi", system=[{"type": "text", "text": "long system prompt " * 20,
                              "cache_control": {"type": "ephemeral"}}])
    first = d.post("d-sonnet", "invoke", req).json()["usage"]
    second = d.post("d-sonnet", "invoke", req).json()["usage"]
    assert first["cache_creation_input_tokens"] > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0


def test_sim_bedrock_error_mid_stream_frames() -> None:
    d = Driver()
    r = d.post("d-sonnet", "invoke-with-response-stream",
               body('hi #sim{"fault": "error_mid_stream", "fault_after": 4}'))
    frames = decode_frames(r.body)
    assert len(frames) == 5
    headers, payload = frames[-1]
    assert headers[":message-type"] == "exception"
    assert headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(payload)["originalStatusCode"] == 500
    r = d.post("d-haiku", "invoke-with-response-stream",
               body('hi #sim{"fault": "error_mid_stream", "fault_after": 4}'))
    events = sse_events(r.body)
    assert events[-1][0] == "error" and json.loads(events[-1][1])["error"]["type"] == "overloaded_error"


def test_sim_bedrock_throttle_shape() -> None:
    d = Driver()
    r = d.post("d-sonnet", "invoke", body('hi #sim{"fault": "429", "retry_after": 2}'))
    assert r.status == 429
    assert r.json() == {"message": "Too many requests, please wait before trying again."}
    assert r.header("x-amzn-errortype").startswith("ThrottlingException")  # type: ignore[union-attr]
    assert r.header("retry-after") == "2"
