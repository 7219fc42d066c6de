"""Bedrock Converse / ConverseStream, including the Python-literal event printing of SAP's gateway."""

from __future__ import annotations

import ast
import json
from typing import Any

from sapproxy.simulator.textgen import thinking_signature
from simhelp import Driver, sse_events, sse_json

TOOLS = {"tools": [{"toolSpec": {"name": "calc", "description": "Calculate", "inputSchema": {"json": {
    "type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}}}]}


def conv(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], **extra}


def test_sim_converse_shape() -> None:
    d = Driver()
    r = d.post("d-sonnet", "converse", conv('hi #sim{"events": 3}', system=[{"text": "be brief"}],
                                            inferenceConfig={"maxTokens": 100}))
    assert r.status == 200, r.body
    body = r.json()
    assert body["output"]["message"] == {"role": "assistant", "content": [{"text": "Echo: hi bravo charlie"}]}
    assert body["stopReason"] == "end_turn"
    assert body["usage"]["totalTokens"] == body["usage"]["inputTokens"] + body["usage"]["outputTokens"]
    assert "latencyMs" in body["metrics"]


def test_sim_converse_stream_events() -> None:
    d = Driver()
    r = d.post("d-sonnet", "converse-stream", conv('hi #sim{"events": 3}'))
    assert r.status == 200
    events = sse_json(r.body)
    assert events[0] == {"messageStart": {"role": "assistant"}}
    assert [e["contentBlockDelta"]["delta"]["text"] for e in events[1:4]] == ["Echo: hi", " bravo", " charlie"]
    assert events[4] == {"contentBlockStop": {"contentBlockIndex": 0}}
    # Bedrock returns the model's own fields only when asked for them by path
    assert events[5] == {"messageStop": {"stopReason": "end_turn"}}
    asked = sse_json(d.post("d-sonnet", "converse-stream", conv('hi #sim{"events": 3}',
                                                                additionalModelResponseFieldPaths=["/stop_sequence"])).body)
    assert asked[5] == {"messageStop": {"additionalModelResponseFields": {"delta": {"stop_sequence": None}},
                                        "stopReason": "end_turn"}}
    assert "additionalModelResponseFields" not in d.post("d-sonnet", "converse", conv("hi")).json()
    whole = d.post("d-sonnet", "converse", conv('hi #sim{"events": 3}')).json()
    assert {k: v for k, v in events[6]["metadata"]["usage"].items() if k != "serverToolUsage"} == whole["usage"]
    assert len(events) == 7


def test_sim_converse_stream_python_literals() -> None:
    d = Driver()
    paths = {"additionalModelResponseFieldPaths": ["/stop_sequence"]}
    r = d.post("d-sonnet", "converse-stream", conv('hi #sim{"events": 2, "python_literals": true}', **paths))
    datas = [data for _, data in sse_events(r.body)]
    assert datas[0] == "{'messageStart': {'role': 'assistant'}}"
    assert "None" in datas[-2]  # stop_sequence: None, not null
    parsed = [ast.literal_eval(x) for x in datas]
    plain = sse_json(d.post("d-sonnet", "converse-stream", conv('hi #sim{"events": 2}', **paths)).body)
    assert parsed[:-1] == plain[:-1]  # the prompts differ (directive text), so only usage differs
    try:
        json.loads(datas[0])
        raise AssertionError("python literal parsed as JSON")
    except ValueError:
        pass


def test_sim_converse_tools_and_reasoning() -> None:
    d = Driver()
    req = conv("compute", toolConfig=TOOLS, inferenceConfig={"maxTokens": 4000},
               additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    body = d.post("d-sonnet", "converse", req).json()
    reasoning, tool = body["output"]["message"]["content"]
    text = reasoning["reasoningContent"]["reasoningText"]["text"]
    assert reasoning["reasoningContent"]["reasoningText"]["signature"] == thinking_signature(text)
    assert tool["toolUse"]["name"] == "calc" and tool["toolUse"]["input"] == {"expr": "sample"}
    assert body["stopReason"] == "tool_use"
    events = sse_json(d.post("d-sonnet", "converse-stream", req).body)
    starts = [e for e in events if "contentBlockStart" in e]
    assert len(starts) == 1 and starts[0]["contentBlockStart"]["start"]["toolUse"]["name"] == "calc"
    sig = [e for e in events if "contentBlockDelta" in e and "signature" in e["contentBlockDelta"]["delta"].get(
        "reasoningContent", {})]
    assert sig[0]["contentBlockDelta"]["delta"]["reasoningContent"]["signature"] == thinking_signature(text)
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                   if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"])
    assert json.loads(args) == {"expr": "sample"}
    follow = {"toolConfig": TOOLS, "messages": [
        {"role": "user", "content": [{"text": "compute"}]},
        {"role": "assistant", "content": [{"toolUse": tool["toolUse"]}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": tool["toolUse"]["toolUseId"],
                                                     "content": [{"text": "42"}]}}]}]}
    out = d.post("d-sonnet", "converse", follow).json()
    assert out["stopReason"] == "end_turn" and "42" in out["output"]["message"]["content"][0]["text"]


def test_sim_converse_validation() -> None:
    d = Driver()
    assert "blank" in d.post("d-sonnet", "converse", conv("")).json()["message"]
    r = d.post("d-sonnet", "converse", {"messages": [{"role": "assistant", "content": [{"text": "x"}]}]})
    assert r.status == 400 and "start with a user message" in r.json()["message"]
    r = d.post("d-sonnet", "converse", {**conv("x"), "max_tokens": 5})
    assert r.status == 400 and "extraneous key [max_tokens]" in r.json()["message"]
    r = d.post("d-sonnet", "converse", {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})
    assert r.status == 400
