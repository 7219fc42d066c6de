"""
Azure api-versions: the defaults accept every field the gateway sends; a per-model api_version overrides them;
the simulator refuses fields newer than the version, as Azure does.
"""

from __future__ import annotations

import json

from app_harness import Harness

from sapproxy.config import DEFAULT_API_VERSION, REASONING_API_VERSION, GatewayConfig, ModelSettings

CHAT = "/v1/chat/completions"
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
    "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}}}
EVERYTHING = {"messages": [{"role": "user", "content": "hi"}], "tools": [TOOL], "tool_choice": "auto",
              "parallel_tool_calls": True, "stream": True, "stream_options": {"include_usage": True}}


def _query(h: Harness) -> dict[str, str]:
    return h.simulator.requests[-1]["query"]  # type: ignore[no-any-return]


def test_defaults_accept_every_field_the_gateway_sends() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "gpt-4.1", **EVERYTHING})
    assert response.code == 200, body
    assert _query(h) == {"api-version": DEFAULT_API_VERSION}
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}],
                                   "response_format": SCHEMA})
    assert response.code == 200, body
    response, body = h.post(CHAT, {"model": "gpt-5", "reasoning_effort": "low", "max_completion_tokens": 50,
                                   **EVERYTHING})
    assert response.code == 200, body
    assert _query(h) == {"api-version": REASONING_API_VERSION}
    # Through the IR too (an Anthropic client on a GPT deployment sends tools and stream_options).
    response, body = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 50, "stream": True, "tools": [{
        "name": "get_weather", "input_schema": {"type": "object"}}], "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 200, body


def test_per_model_api_version_overrides_and_an_old_one_is_refused_clearly() -> None:
    h = Harness(models={"gpt-4.1": ModelSettings(api_version="2023-05-15")})
    response, body = h.post(CHAT, {"model": "gpt-4.1", **EVERYTHING})
    assert _query(h) == {"api-version": "2023-05-15"}
    assert response.code == 400
    assert json.loads(body)["error"]["message"] == "Unrecognized request argument supplied: tools"


def test_version_choice() -> None:
    config = GatewayConfig(models={"o3": ModelSettings(api_version="2024-12-01-preview")})
    assert config.api_version("gpt-4o") == "2024-10-21"
    assert config.api_version("text-embedding-3-small") == "2024-10-21"
    assert config.api_version("gpt-5-mini") == "2025-04-01-preview"
    assert config.api_version("o4-mini") == "2025-04-01-preview"
    assert config.api_version("o3") == "2024-12-01-preview"
