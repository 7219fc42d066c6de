"""
The Responses API of the simulated GPT deployments: as strict as AI Core, and streams a strict client accepts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from simhelp import Driver, sse_events, sse_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "translate"))
from responses_check import check_stream  # noqa: E402

R = "responses?api-version=2025-04-01-preview"
SHELL = {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {
    "command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}}


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5", "input": [{"role": "user", "content": "hello"}], "store": False, **extra}


@pytest.mark.parametrize("deployment", ["d-gpt41", "d-gpt5"])
def test_sim_responses_stream_and_whole_agree(deployment: str) -> None:
    d = Driver()
    whole = d.post(deployment, R, body())
    assert whole.status == 200, whole.body
    streamed = d.post(deployment, R, body(stream=True))
    assert streamed.header("content-type") == "text/event-stream; charset=utf-8"
    assert all(name == json_type for name, json_type in
               ((name, __import__("json").loads(data)["type"]) for name, data in sse_events(streamed.body)))
    final = check_stream(sse_json(streamed.body), recorded=True)  # an upstream's shape, as recorded
    assert [i["type"] for i in final["output"]] == [i["type"] for i in whole.json()["output"]]
    text = final["output"][-1]["content"][0]["text"]
    assert text == whole.json()["output"][-1]["content"][0]["text"] and "hello" in text


def test_sim_responses_tool_call_then_text_with_the_output() -> None:
    d = Driver()
    first = d.post("d-gpt5", R, body(tools=[SHELL], stream=True,
                                     input=[{"role": "user", "content": 'go #sim{"tool_args": {"command": ["ls"]}}'}]))
    final = check_stream(sse_json(first.body), recorded=True)
    (call,) = [i for i in final["output"] if i["type"] == "function_call"]
    assert call["arguments"] == '{"command":["ls"]}'
    second = d.post("d-gpt5", R, body(tools=[SHELL], input=[
        {"role": "user", "content": "go"}, {"type": "function_call", "call_id": call["call_id"], "name": "shell",
                                            "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "a.txt"}]))
    assert "tool said a.txt" in second.json()["output"][-1]["content"][0]["text"]


@pytest.mark.parametrize("change, param", [
    ({"tools": [{"type": "custom", "name": "apply_patch"}]}, "tools[0].type"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "local_shell"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "web_search"}}, "tool_choice.type"),
    ({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "x", "input": ""}]}, "input[0].type"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]}, "input"),
    ({"input": [{"type": "reasoning", "summary": [], "encrypted_content": "sapproxy.r1.e30="}]}, "input"),
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"store": True}, "store"),
    ({"temperature": 0.5}, "temperature"),
])
def test_sim_responses_refuses_what_ai_core_refuses(change: dict[str, Any], param: str) -> None:
    r = Driver().post("d-gpt5", R, body(**change))
    assert r.status == 400, r.body
    assert r.json()["error"]["param"] == param


def test_sim_responses_model_and_version_rules() -> None:
    d = Driver()
    assert d.post("d-gpt41", R, body(reasoning={"effort": "low"})).status == 400
    assert d.post("d-gpt41", R, body(include=["reasoning.encrypted_content"])).status == 400
    assert d.post("d-gpt5", "responses?api-version=2024-10-21", body()).status == 400
    own = d.post("d-gpt5", R, body(include=["reasoning.encrypted_content"])).json()["output"][0]
    assert own["type"] == "reasoning" and own["encrypted_content"].startswith("gAAAAB")
    again = d.post("d-gpt5", R, body(input=[{"role": "user", "content": "q"}, own,
                                           {"role": "user", "content": "more"}]))
    assert again.status == 200, again.body
