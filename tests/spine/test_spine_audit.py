"""
The translation audit's fixes (issue 14) through the whole request path, against the simulator, which
refuses what the real upstreams refuse.
"""

from __future__ import annotations

import json
from typing import Any

from app_harness import Harness, sse_data

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
LONG = "mcp__claude_ai_Atlassian__getConfluencePageDescendantsWithAVeryLongNameIndeed_v2"


def _upstream(h: Harness, fragment: str) -> dict[str, Any]:
    return [r["body"] for r in h.simulator.requests if fragment in r["path"]][-1]


def test_item1_claude_code_system_turns_reach_gpt() -> None:
    h = Harness()
    messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"},
                {"role": "user", "content": "again"}]
    response, body = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 50, "messages": messages})
    assert response.code == 200, body
    assert [m["role"] for m in _upstream(h, "/chat/completions")["messages"]] == ["user", "system", "user"]


def test_items2_3_openai_sampling_defaults_reach_claude_45() -> None:
    h = Harness()
    for model in ("anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-haiku"):
        response, body = h.post(CHAT, {"model": model, "messages": HI, "temperature": 1.6, "top_p": 1})
        assert response.code == 200, body
        sent = _upstream(h, "/invoke")
        assert sent["temperature"] == 1 and "top_p" not in sent


def test_item5_long_mcp_tool_names_through_gpt_and_gemini_come_back_as_sent() -> None:
    h = Harness()
    tool = {"name": LONG, "description": "d", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    for model in ("gpt-4.1", "gemini-2.5-pro"):
        for stream in (False, True):
            response, body = h.post("/v1/messages", {"model": model, "max_tokens": 200, "messages": HI,
                                                     "tools": [tool], "stream": stream})
            assert response.code == 200, body
            if stream:
                starts = [json.loads(d)["content_block"] for d in sse_data(body)
                          if json.loads(d)["type"] == "content_block_start"]
                names = [b["name"] for b in starts if b["type"] == "tool_use"]
            else:
                names = [b["name"] for b in json.loads(body)["content"] if b["type"] == "tool_use"]
            assert names == [LONG], (model, stream, body)


def test_item5_openai_names_gemini_refuses() -> None:
    h = Harness()
    tool = {"type": "function", "function": {"name": "2fa-code", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    response, body = h.post(CHAT, {"model": "gemini-2.5-pro", "messages": HI, "tools": [tool]})
    assert response.code == 200, body
    (call,) = json.loads(body)["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "2fa-code"


def test_item7_openai_clients_without_a_limit_get_the_models_own() -> None:
    from sapproxy.config import ModelSettings

    h = Harness()
    for model, fragment, ceiling in (("gemini-2.5-pro", "generateContent", 65536),
                                     ("anthropic--claude-4.5-sonnet", "/invoke", 64000)):
        response, body = h.post(CHAT, {"model": model, "messages": HI})
        assert response.code == 200, body
        sent = _upstream(h, fragment)
        assert (sent.get("generationConfig") or {}).get("maxOutputTokens", sent.get("max_tokens")) == ceiling
    h = Harness(models={"gemini-2.5-pro": ModelSettings(max_output_tokens=12345)})
    assert h.post(CHAT, {"model": "gemini-2.5-pro", "messages": HI})[0].code == 200
    assert _upstream(h, "generateContent")["generationConfig"]["maxOutputTokens"] == 12345


def test_item8_server_tools_are_dropped_and_named_for_every_family() -> None:
    h = Harness()
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
             {"type": "web_search_20250305", "name": "web_search"}, {"type": "bash_20250124", "name": "bash"}]
    for model in ("gpt-4.1", "gemini-2.5-pro", "anthropic--claude-4.5-sonnet"):
        response, body = h.post("/v1/messages", {"model": model, "max_tokens": 100, "messages": HI, "tools": tools})
        assert response.code == 200, (model, body)
        assert response.headers.getRawHeaders("x-sapproxy-dropped-tools") == ["web_search (web_search_20250305)"]
    assert [t["function"]["name"] for t in _upstream(h, "/chat/completions")["tools"]] == ["get_weather", "bash"]
    assert [d["name"] for d in _upstream(h, "generateContent")["tools"][0]["functionDeclarations"]] == ["get_weather", "bash"]
    assert [t["name"] for t in _upstream(h, "/invoke")["tools"]] == ["get_weather", "bash"]
    response, _ = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 100, "messages": HI, "tools": tools[:1]})
    assert response.headers.getRawHeaders("x-sapproxy-dropped-tools") is None


def test_item11_json_object_reaches_gemini_as_a_mime_type() -> None:
    h = Harness()
    response, _ = h.post(CHAT, {"model": "gemini-2.5-pro", "messages": HI, "response_format": {"type": "json_object"}})
    assert response.code == 200
    assert _upstream(h, "generateContent")["generationConfig"]["responseMimeType"] == "application/json"


def test_item13_converse_tells_which_stop_sequence_matched() -> None:
    from sapproxy.config import ModelSettings

    h = Harness(models={"anthropic--claude-4.5-sonnet": ModelSettings(converse=True)})
    ask = [{"role": "user", "content": 'hi #sim{"stop": "stop_sequence"}'}]
    for stream in (False, True):
        response, body = h.post("/v1/messages", {"model": "anthropic--claude-4.5-sonnet", "max_tokens": 50,
                                                 "messages": ask, "stop_sequences": ["HALT"], "stream": stream})
        assert response.code == 200, body
        if stream:
            (delta,) = [json.loads(d)["delta"] for d in sse_data(body) if json.loads(d)["type"] == "message_delta"]
        else:
            delta = json.loads(body)
        assert (delta["stop_reason"], delta["stop_sequence"]) == ("stop_sequence", "HALT")


def test_item16_seed_is_refused_for_claude_in_the_openai_dialect_and_reaches_gemini() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "anthropic--claude-4.5-sonnet", "messages": HI, "seed": 1})
    assert response.code == 400
    error = json.loads(body)["error"]
    assert error["param"] == "seed" and "not supported for Claude" in error["message"]
    response, _ = h.post(CHAT, {"model": "gemini-2.5-pro", "messages": HI, "seed": 1, "frequency_penalty": 0.2})
    assert response.code == 200
    assert _upstream(h, "generateContent")["generationConfig"]["seed"] == 1


def test_item17_reasoning_effort_none_reaches_gemini_pro_as_its_least_thinking() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "gemini-2.5-pro", "messages": HI, "reasoning_effort": "none"})
    assert response.code == 200, body
    assert _upstream(h, "generateContent")["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}


def test_item15_numeric_enums_through_gemini_come_back_as_numbers() -> None:
    h = Harness()
    schema = {"type": "object", "properties": {"level": {"type": "integer", "enum": [2, 3]}}, "required": ["level"]}
    for stream in (False, True):
        response, body = h.post("/v1/messages", {"model": "gemini-2.5-pro", "max_tokens": 200, "messages": HI,
                                                 "tools": [{"name": "set_level", "input_schema": schema}], "stream": stream})
        assert response.code == 200, body
        if stream:
            text = "".join(json.loads(d)["delta"].get("partial_json", "") for d in sse_data(body)
                           if json.loads(d)["type"] == "content_block_delta")
            arguments = json.loads(text)
        else:
            (arguments,) = [b["input"] for b in json.loads(body)["content"] if b["type"] == "tool_use"]
        assert arguments == {"level": 2}


def test_item19_a_malformed_gemini_function_call_is_an_error_not_an_empty_answer() -> None:
    h = Harness()
    ask = [{"role": "user", "content": 'hi #sim{"stop": "malformed_function_call"}'}]
    response, body = h.post(CHAT, {"model": "gemini-2.5-pro", "messages": ask})
    assert response.code == 502
    assert "MALFORMED_FUNCTION_CALL" in json.loads(body)["error"]["message"]
    response, body = h.post("/v1/messages", {"model": "gemini-2.5-pro", "max_tokens": 50, "messages": ask, "stream": True})
    events = [json.loads(d) for d in sse_data(body)]
    assert events[-1]["type"] == "error" and "MALFORMED_FUNCTION_CALL" in events[-1]["error"]["message"]
    assert not any(e["type"] == "message_delta" for e in events)
    response, body = h.post(CHAT, {"model": "gemini-2.5-pro", "messages": ask, "stream": True})
    chunks = [json.loads(d) for d in sse_data(body) if d != "[DONE]"]
    assert "MALFORMED_FUNCTION_CALL" in chunks[-1]["error"]["message"]


def test_item18_anthropic_streams_from_gpt_start_with_an_input_estimate() -> None:
    h = Harness()
    response, body = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 50, "stream": True,
                                             "messages": [{"role": "user", "content": "hello " * 200}]})
    assert response.code == 200
    events = [json.loads(d) for d in sse_data(body)]
    assert events[0]["message"]["usage"]["input_tokens"] > 100  # an estimate, not 0
    final = [e for e in events if e["type"] == "message_delta"][-1]["usage"]
    assert final["input_tokens"] > 0  # the upstream's own count at the end


def test_item12_context_management_reaches_claude_45_with_its_beta() -> None:
    h = Harness()
    response, body = h.post("/v1/messages", {"model": "anthropic--claude-4.5-sonnet", "max_tokens": 50, "messages": HI,
                                             "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
                            headers={"anthropic-beta": "context-management-2025-06-27,claude-code-20250219"})
    assert response.code == 200, body
    sent = _upstream(h, "/invoke")
    assert sent["anthropic_beta"] == ["context-management-2025-06-27"] and "context_management" in sent
