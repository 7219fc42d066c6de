"""
Fuzzing every route with generated bodies and headers: the gateway never answers 500, and every error is
a JSON body in the route's own dialect.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from app_harness import Harness

_HARNESS: Harness | None = None


def harness() -> Harness:
    global _HARNESS
    if _HARNESS is None:
        _HARNESS = Harness()
    return _HARNESS


ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/embeddings"]
MODELS = st.sampled_from(["gpt-4.1", "anthropic--claude-4.5-sonnet", "gemini-2.5-pro", "claude-opus-4-8",
                          "text-embedding-3-small", "nope", "", 3, None])
scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", "x", 1])
parts = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "image", "tool_use", "tool_result",
                                                        "thinking", "input_audio", "zzz"])},
                              optional={"text": scalars, "image_url": json_values, "source": json_values,
                                        "id": scalars, "input": json_values, "content": json_values})
messages = st.lists(st.fixed_dictionaries({"role": ROLES}, optional={
    "content": st.text(max_size=30) | st.lists(parts, max_size=3) | json_values,
    "tool_calls": json_values, "tool_call_id": scalars, "name": scalars}), max_size=4)
bodies = st.fixed_dictionaries({}, optional={
    "model": MODELS, "messages": messages | json_values, "stream": st.booleans() | scalars,
    "max_tokens": st.integers(-3, 200000) | scalars, "tools": json_values, "tool_choice": json_values,
    "system": json_values, "temperature": scalars, "stop": json_values, "input": json_values,
    "encoding_format": scalars, "thinking": json_values, "reasoning_effort": scalars, "response_format": json_values,
    "stream_options": json_values, "n": scalars,
})


def check(path: str, response: Any, body: bytes) -> None:
    assert response.code != 500 and response.code < 600, (response.code, body[:300])
    if response.code == 200:
        return
    parsed = json.loads(body)
    if path.startswith("/v1/messages"):
        assert parsed["type"] == "error" and isinstance(parsed["error"]["message"], str), parsed
    else:
        assert isinstance(parsed["error"]["message"], str) and "type" in parsed["error"], parsed


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(ROUTES), body=bodies)
def test_generated_bodies_never_500(path: str, body: dict[str, Any]) -> None:
    response, raw = harness().post(path, body)
    check(path, response, raw)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(ROUTES), raw=st.binary(max_size=200),
       headers=st.dictionaries(st.sampled_from(["Content-Type", "anthropic-beta", "x-api-key", "User-Agent",
                                                "Accept"]), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=3))
def test_generated_bytes_and_headers_never_500(path: str, raw: bytes, headers: dict[str, str]) -> None:
    response, body = harness().post(path, None, raw=raw, headers=headers)
    check(path, response, body)
