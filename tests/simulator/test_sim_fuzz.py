"""Whatever JSON a (buggy) proxy sends, the simulator answers like a provider: 200 or a 4xx, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from simhelp import Driver

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
keys = st.sampled_from(["messages", "contents", "role", "content", "parts", "text", "type", "tools", "stream",
                        "max_tokens", "anthropic_version", "thinking", "budget_tokens", "tool_choice", "input",
                        "toolConfig", "inferenceConfig", "generationConfig", "function", "name", "toolResult",
                        "tool_result", "functionResponse", "system", "stream_options", "include_usage"])
bodies = st.recursive(
    json_values,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
ENDPOINTS = [
    ("d-gpt41", "chat/completions?api-version=2024-10-21"),
    ("d-gpt5", "chat/completions?api-version=2025-04-01-preview"),
    ("d-embed", "embeddings?api-version=2024-10-21"),
    ("d-sonnet", "invoke"),
    ("d-sonnet", "invoke-with-response-stream"),
    ("d-haiku", "invoke-with-response-stream"),
    ("d-sonnet", "converse"),
    ("d-sonnet", "converse-stream"),
    ("d-gemini", "models/gemini-2.5-pro:generateContent"),
    ("d-gemini", "models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
]
DRIVER = Driver()
TOKEN = DRIVER.token()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_sim_fuzz_never_crashes(endpoint: tuple[str, str], body: Any) -> None:
    deployment, path = endpoint
    r = DRIVER.request("POST", f"/v2/inference/deployments/{deployment}/{path}", body=body,
                       headers=DRIVER.headers(TOKEN))
    assert r.status in (200, 400, 404), (r.status, r.body[:300])


VALID: dict[str, Any] = {
    "openai": {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "text", "text": "hi"}]}, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}],
        "tool_choice": "auto", "stream": True, "stream_options": {"include_usage": True}},
    "embed": {"input": ["a", "b"], "dimensions": 4, "encoding_format": "base64"},
    "bedrock": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096,
                "thinking": {"type": "enabled", "budget_tokens": 1024}, "system": [{"type": "text", "text": "s"}],
                "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}},
                                                         "required": ["a"]}}],
                "tool_choice": {"type": "tool", "name": "f"},
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "text", "text": "r"}]}]}]},
    "converse": {"messages": [{"role": "user", "content": [{"text": "q"}]}, {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]}, {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t", "content": [{"json": {"x": 1}}]}}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}],
                       "toolChoice": {"tool": {"name": "f"}}},
        "inferenceConfig": {"maxTokens": 4000},
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}},
    "vertex": {"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {}}}]}, {"role": "user", "parts": [
            {"functionResponse": {"name": "f", "response": {"x": 1}}}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 100}}},
}
KIND_ENDPOINTS = {
    "openai": [e for e in ENDPOINTS if e[0] in ("d-gpt41", "d-gpt5")],
    "embed": [e for e in ENDPOINTS if e[0] == "d-embed"],
    "bedrock": [e for e in ENDPOINTS if "invoke" in e[1]],
    "converse": [e for e in ENDPOINTS if "converse" in e[1]],
    "vertex": [e for e in ENDPOINTS if e[0] == "d-gemini"],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, prefix + (i,)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def mutated(draw: st.DrawFn) -> tuple[tuple[str, str], Any]:
    kind = draw(st.sampled_from(sorted(VALID)))
    body = VALID[kind]
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(body)))
        body = _replace(body, path, draw(json_values))
    return draw(st.sampled_from(KIND_ENDPOINTS[kind])), body


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutated())
def test_sim_fuzz_mutated_valid_bodies(case: tuple[tuple[str, str], Any]) -> None:
    (deployment, path), body = case
    r = DRIVER.request("POST", f"/v2/inference/deployments/{deployment}/{path}", body=body,
                       headers=DRIVER.headers(TOKEN))
    assert r.status in (200, 400, 404), (r.status, r.body[:300], body)
