"""
Fuzzing the Responses API routes with generated bodies: never a 500, every error OpenAI's JSON shape, and a
stream that starts always ends with one terminal event.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from app_harness import Harness
from test_spine_responses import events_of

_HARNESS: Harness | None = None


def harness() -> Harness:
    global _HARNESS
    if _HARNESS is None:
        _HARNESS = Harness()
    return _HARNESS


scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
ITEM_TYPES = st.sampled_from(["message", "function_call", "function_call_output", "custom_tool_call",
                              "custom_tool_call_output", "local_shell_call", "local_shell_call_output", "reasoning",
                              "web_search_call", "item_reference", "zzz", None, 3])
PART_TYPES = st.sampled_from(["input_text", "output_text", "input_image", "input_file", "refusal", "text", "x"])
parts = st.fixed_dictionaries({"type": PART_TYPES}, optional={
    "text": scalars, "image_url": scalars, "file_data": scalars, "refusal": scalars, "file_id": scalars})
items = st.fixed_dictionaries({}, optional={
    "type": ITEM_TYPES, "role": st.sampled_from(["user", "assistant", "system", "developer", "tool", 7]),
    "content": st.text(max_size=20) | st.lists(parts, max_size=3) | json_values,
    "call_id": st.sampled_from(["c1", "c2", ""]) | scalars, "name": st.sampled_from(["shell", "apply_patch"]) | scalars,
    "arguments": st.sampled_from(["{}", '{"command":["ls"]}', "not json"]) | json_values,
    "output": scalars | st.lists(parts, max_size=2), "input": scalars, "action": json_values,
    "encrypted_content": scalars, "namespace": scalars, "id": scalars})
tools = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["function", "custom", "namespace", "local_shell",
                                                                  "web_search", "mcp", 5])},
                                       optional={"name": st.sampled_from(["shell", "apply_patch", "ns"]) | scalars,
                                                 "parameters": json_values, "tools": json_values,
                                                 "format": json_values}), max_size=3)
MODELS = st.sampled_from(["gpt-4.1", "gpt-5", "anthropic--claude-4.5-sonnet", "gemini-2.5-pro"])
#: Mostly well-typed bodies (so the converters, not the first check, meet the odd parts), some wholly wrong.
good = st.fixed_dictionaries({"model": MODELS, "input": st.text(max_size=20) | st.lists(items, min_size=1, max_size=5)},
                             optional={
    "instructions": st.text(max_size=10) | scalars, "stream": st.booleans(), "store": st.booleans(),
    "tools": tools, "tool_choice": st.sampled_from(["auto", "required", "none"]) | json_values,
    "max_output_tokens": st.integers(-3, 100000), "temperature": st.floats(0, 2) | scalars,
    "reasoning": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low", "high", "xhigh", "x"]),
                                                     "summary": scalars}) | json_values,
    "text": st.fixed_dictionaries({}, optional={"format": json_values, "verbosity": scalars}),
    "include": st.lists(st.sampled_from(["reasoning.encrypted_content", "x"]), max_size=2),
    "parallel_tool_calls": st.booleans(), "metadata": json_values, "user": scalars,
})
wild = st.fixed_dictionaries({}, optional={
    "model": MODELS | scalars, "input": json_values, "stream": scalars, "tools": json_values,
    "previous_response_id": scalars, "include": json_values, "store": scalars,
})
bodies = good | good | good | wild


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/responses", "/v1/responses/input_tokens"]), body=bodies)
def test_fuzzed_responses_bodies_never_500(path: str, body: dict[str, Any]) -> None:
    response, raw = harness().post(path, body)
    assert response.code != 500 and response.code < 600, (response.code, raw[:300])
    if response.code != 200:
        error = json.loads(raw)["error"]
        assert isinstance(error["message"], str) and "type" in error
        return
    if (response.headers.getRawHeaders(b"content-type") or [b""])[0].startswith(b"text/event-stream"):
        events = events_of(raw)
        terminal = [e for e in events if e["type"] in ("response.completed", "response.incomplete", "response.failed")]
        assert len(terminal) == 1 and events[-1] is terminal[0]
