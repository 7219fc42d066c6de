"""Vertex Gemini generateContent / streamGenerateContent for kind=vertex deployments."""

from __future__ import annotations

import json
from typing import Any

from sapproxy.simulator.textgen import thinking_signature
from simhelp import Driver, sse_json

GEN = "models/gemini-2.5-pro:generateContent"
STREAM = "models/gemini-2.5-pro:streamGenerateContent?alt=sse"
TOOLS = [{"functionDeclarations": [{"name": "lookup", "description": "Look up", "parameters": {
    "type": "OBJECT", "properties": {"q": {"type": "STRING"}, "n": {"type": "INTEGER"}}, "required": ["q", "n"]}}]}]


def req(text: str, **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def test_sim_vertex_generate_content_shape() -> None:
    d = Driver()
    r = d.post("d-gemini", GEN, req('hi #sim{"events": 3}'))
    assert r.status == 200, r.body
    body = r.json()
    (cand,) = body["candidates"]
    assert cand["content"] == {"role": "model", "parts": [{"text": "Echo: hi bravo charlie"}]}
    assert cand["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + \
        usage["thoughtsTokenCount"]
    assert body["modelVersion"] == "gemini-2.5-pro"
    assert body["responseId"] and body["createTime"].endswith("Z")


def test_sim_vertex_stream_crlf_no_done() -> None:
    d = Driver()
    r = d.post("d-gemini", STREAM, req('hi #sim{"events": 3}'))
    assert r.status == 200
    assert r.header("content-type") == "text/event-stream"
    assert r.body.count(b"\r\n\r\n") == 3 and b"[DONE]" not in r.body
    chunks = sse_json(r.body)
    texts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks]
    assert texts == ["Echo: hi", " bravo", " charlie"]
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    whole = d.post("d-gemini", GEN, req('hi #sim{"events": 3}')).json()
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]
    assert len({c["responseId"] for c in chunks}) == 1


def test_sim_vertex_thoughts_and_function_calls() -> None:
    d = Driver()
    config = {"generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}}
    parts = d.post("d-gemini", GEN, req("find it", tools=TOOLS, **config)).json()["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[0]["text"]
    assert parts[1]["functionCall"] == {"name": "lookup", "args": {"q": "sample", "n": 1}}
    assert parts[1]["thoughtSignature"] == thinking_signature("find it")
    chunks = sse_json(d.post("d-gemini", STREAM.replace("pro", "pro"), req(
        'find #sim{"tool_calls": 2}', tools=TOOLS)).body)
    calls = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert [("thoughtSignature" in p) for p in calls] == [True, False]
    follow = {"contents": [
        {"role": "user", "parts": [{"text": "find"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "x", "n": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"hits": 7}}}]}],
        "tools": TOOLS}
    text = d.post("d-gemini", GEN, follow).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert json.dumps({"hits": 7}, separators=(",", ":")) in text


def test_sim_vertex_rejections() -> None:
    d = Driver()
    r = d.post("d-gemini", GEN, req("x", max_tokens=5))
    assert r.status == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400
    assert 'Unknown name "max_tokens"' in err["message"]
    r = d.post("d-gemini", GEN, req("x", generationConfig={"max_tokens": 5}))
    assert "at 'generation_config'" in r.json()["error"]["message"]
    r = d.post("d-gemini", GEN, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
    assert r.status == 400 and "valid role" in r.json()["error"]["message"]
    r = d.post("d-gemini", "models/gemini-2.5-flash:generateContent", req("x"))
    assert r.status == 404
    r = d.post("d-gemini", GEN, req("x", generationConfig={"thinkingConfig": {"thinkingBudget": 0}}))
    assert r.status == 400
    r = d.post("d-gemini-flash", "models/gemini-2.5-flash:generateContent",
               req("x", generationConfig={"thinkingConfig": {"thinkingBudget": 0}, "maxOutputTokens": 10}))
    assert r.status == 200 and "thoughtsTokenCount" not in r.json()["usageMetadata"]


def test_sim_vertex_faults() -> None:
    d = Driver()
    r = d.post("d-gemini", GEN, req('x #sim{"fault": "429"}'))
    assert r.status == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    r = d.post("d-gemini", STREAM, req('x #sim{"fault": "error_mid_stream", "fault_after": 2}'))
    chunks = sse_json(r.body)
    assert len(chunks) == 3 and chunks[-1]["error"]["status"] == "INTERNAL"
