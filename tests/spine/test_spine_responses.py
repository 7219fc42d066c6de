"""
POST /v1/responses through the whole in-memory gateway: every family, streamed and not, the usage row,
stored responses and previous_response_id, GET/DELETE, input_tokens, and errors in OpenAI's shape.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from app_harness import Harness
from sapproxy.translate.framing.sse import SSEDecoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "translate"))
from responses_check import check_stream  # noqa: E402

R = "/v1/responses"
MODELS = ["gpt-4.1", "gpt-5", "claude-sonnet-4-5", "gemini-2.5-pro"]
SHELL = {"type": "function", "name": "shell", "description": "run",
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                        "required": ["command"]}}


def harness() -> Harness:
    """The in-memory gateway (its response store is an in-memory SQLite database)."""
    return Harness()


def events_of(body: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    raw = decoder.feed(body) + decoder.finish()
    out = []
    for event in raw:
        payload = json.loads(event.data)
        assert event.event == payload["type"], "the SSE event name is the payload's type"
        out.append(payload)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_stream_for_every_family(model: str) -> None:
    h = harness()
    response, body = h.post(R, {"model": model, "input": "hello there", "stream": True})
    assert response.code == 200, body
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    assert b"[DONE]" not in body
    final = check_stream(events_of(body))
    assert final["status"] == "completed" and final["model"] == model
    text = "".join(p["text"] for i in final["output"] if i["type"] == "message" for p in i["content"])
    assert "hello there" in text
    (row,) = h.rows.rows
    assert row.status == 200 and row.stream and row.dialect == "responses" and row.endpoint == R
    assert row.prompt_tokens == final["usage"]["input_tokens"] and row.completion_tokens == final["usage"]["output_tokens"]
    assert not row.tokens_estimated


@pytest.mark.parametrize("model", MODELS)
def test_whole_response_for_every_family(model: str) -> None:
    h = harness()
    response, body = h.post(R, {"model": model, "input": [{"role": "user", "content": "hi"}], "instructions": "be kind"})
    assert response.code == 200, body
    reply = json.loads(body)
    from openai.types.responses import Response
    Response.model_validate(reply)
    assert reply["object"] == "response" and reply["status"] == "completed" and reply["model"] == model
    (row,) = h.rows.rows
    assert row.prompt_tokens == reply["usage"]["input_tokens"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_a_tool_round_trip_with_previous_response_id(model: str) -> None:
    h = harness()
    first_r, first_b = h.post(R, {"model": model, "input": "list the files", "tools": [SHELL, {"type": "web_search"}],
                                  "stream": True})
    assert first_r.code == 200, first_b
    first = check_stream(events_of(first_b))
    (call,) = [i for i in first["output"] if i["type"] == "function_call"]
    assert call["name"] == "shell" and json.loads(call["arguments"])["command"]
    second_r, second_b = h.post(R, {"model": model, "previous_response_id": first["id"], "tools": [SHELL],
                                    "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                               "output": "a.txt b.txt"}]})
    assert second_r.code == 200, second_b
    second = json.loads(second_b)
    text = "".join(p["text"] for i in second["output"] if i["type"] == "message" for p in i["content"])
    assert "tool said" in text and "a.txt b.txt" in text
    assert second["previous_response_id"] == first["id"]
    got_r, got_b = h.get(f"{R}/{second['id']}")
    assert got_r.code == 200 and json.loads(got_b)["output"] == second["output"]


def test_custom_and_local_shell_tools_on_gpt_come_back_in_their_shapes() -> None:
    h = harness()
    tools = [{"type": "custom", "name": "apply_patch", "description": "patch"}, {"type": "local_shell"}]
    for name, kind in (("apply_patch", "custom_tool_call"), ("local_shell", "local_shell_call")):
        text = "go #sim{\"tool_name\": \"%s\", \"tool_args\": %s}" % (
            name, json.dumps({"input": "*** Begin Patch"} if kind == "custom_tool_call" else {"command": ["ls", "-la"]}))
        response, body = h.post(R, {"model": "gpt-5", "input": text, "tools": tools, "stream": True})
        assert response.code == 200, body
        final = check_stream(events_of(body))
        (item,) = [i for i in final["output"] if i["type"] != "reasoning"]
        assert item["type"] == kind
        if kind == "custom_tool_call":
            assert item["input"] == "*** Begin Patch"
        else:
            assert item["action"]["command"] == ["ls", "-la"]
    # The simulator refuses anything but function tools, as AI Core does: so none reached it.
    sent = [r for r in h.simulator.requests if r["path"].endswith("/responses")]
    assert sent and all(t["type"] == "function" for r in sent for t in r["body"].get("tools", []))


def test_max_tokens_is_incomplete_and_a_mid_stream_failure_is_failed() -> None:
    h = harness()
    _, body = h.post(R, {"model": "claude-sonnet-4-5", "input": "hi #sim{\"stop\": \"max_tokens\"}", "stream": True})
    events = events_of(body)
    check_stream(events)
    assert events[-1]["type"] == "response.incomplete"
    for model in ("claude-sonnet-4-5", "gpt-4.1"):
        _, body = h.post(R, {"model": model, "input": "hi #sim{\"fault\": \"reset_mid_stream\", \"fault_after\": 3}",
                             "stream": True})
        events = events_of(body)
        check_stream(events)
        assert events[-1]["type"] == "response.failed"
        assert "response.completed" not in [e["type"] for e in events]


def test_stored_responses_get_delete_and_not_found() -> None:
    h = harness()
    _, body = h.post(R, {"model": "gpt-4.1", "input": "hi"})
    reply = json.loads(body)
    response, got = h.get(f"{R}/{reply['id']}")
    assert response.code == 200 and json.loads(got)["id"] == reply["id"]
    response = h.wait(h.client.request("DELETE", f"http://gw.test{R}/{reply['id']}",
                                       headers={"Authorization": "Bearer sk-test"}))
    assert response.code == 200
    assert json.loads(h.wait(h.client.content(response))) == {"id": reply["id"], "object": "response", "deleted": True}
    response, got = h.get(f"{R}/{reply['id']}")
    assert response.code == 404 and json.loads(got)["error"]["type"] == "not_found_error"
    response, body = h.post(R, {"model": "gpt-4.1", "input": "x", "previous_response_id": "resp_nope"})
    assert response.code == 404 and json.loads(body)["error"]["param"] == "previous_response_id"
    _, body = h.post(R, {"model": "gpt-4.1", "input": "hi", "store": False})
    response, _ = h.get(f"{R}/{json.loads(body)['id']}")
    assert response.code == 404


def test_input_tokens_and_bad_requests() -> None:
    h = harness()
    response, body = h.post(f"{R}/input_tokens", {"model": "claude-sonnet-4-5", "input": "count these words please"})
    assert response.code == 200 and json.loads(body)["object"] == "response.input_tokens"
    assert json.loads(body)["input_tokens"] > 0
    for bad, param in (({"model": "gpt-4.1"}, "input"), ({"model": "gpt-4.1", "input": "x", "stream": "yes"}, "stream"),
                       ({"model": "claude-sonnet-4-5", "input": [{"type": "nope"}]}, "input[0].type")):
        response, body = h.post(R, bad)
        assert response.code == 400, body
        assert json.loads(body)["error"]["param"] == param
    response, body = h.post(R, {"model": "gpt-4.1", "input": "x"}, token="wrong")
    assert response.code == 401 and json.loads(body)["error"]["type"] == "authentication_error"


def test_the_stored_responses_ttl_is_configured(tmp_path: Path) -> None:
    from test_spine_config import KEY, URL, error, write

    from sapproxy.config import load_config

    config = load_config(write(tmp_path, {"service_key_json": KEY, "deployment_models": {"m": URL},
                                          "responses_ttl_days": 7}))
    assert config.responses_ttl_days == 7
    assert "responses_ttl_days" in error(tmp_path, {"service_key_json": KEY, "deployment_models": {"m": URL},
                                                    "responses_ttl_days": "a week"})


def test_a_responses_only_gpt_serves_chat_and_anthropic_clients() -> None:
    from sapproxy.config import ModelSettings

    h = Harness(models={"gpt-5": ModelSettings(responses_only=True)})
    response, body = h.post("/v1/chat/completions", {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"].startswith("Echo: hi")
    response, body = h.post("/v1/chat/completions", {"model": "gpt-5", "stream": True,
                                                     "messages": [{"role": "user", "content": "hi"}]})
    chunks = [json.loads(d) for d in body.decode().split("data: ")[1:] if not d.startswith("[DONE]")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")).startswith("Echo: hi")
    response, body = h.post("/v1/messages", {"model": "gpt-5", "max_tokens": 100, "stream": True, "tools": [
        {"name": "shell", "input_schema": SHELL["parameters"]}], "messages": [{"role": "user", "content": "list"}]},
        headers={"anthropic-version": "2023-06-01"})
    assert response.code == 200, body
    assert b'"type":"tool_use"' in body and b'"stop_reason":"tool_use"' in body
    paths = [r["path"] for r in h.simulator.requests if "d-gpt5" in r["path"]]
    assert paths and all(p.endswith("/responses") for p in paths)
