"""
The Bedrock invoke sanitiser (Anthropic clients, Claude Code above all, in front of Bedrock) and the
response/stream normalisation.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from sapproxy.translate.wire.bedrock_invoke import (
    ALLOWED_TOP_LEVEL,
    BEDROCK_BETAS,
    BedrockStreamNormaliser,
    bedrock_betas,
    bedrock_invoke_body,
    bedrock_invoke_response,
)

EVENT = TypeAdapter(RawMessageStreamEvent)
SIGNATURE = "EqQBCkgIBRABGAIiQL+0/Zq+q4cpVr3vFj8Pk3qk2sFJdG4N/2pOw6v+=="

CLAUDE_CODE_BETAS = (
    "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14, fine-grained-tool-streaming-2025-05-14,"
    "context-management-2025-06-27,tool-examples-2025-10-29,made-up-beta-2030-01-01"
)


def claude_code_body() -> dict[str, Any]:
    """A request shaped like Claude Code's: tools with extras, cache_control, thinking, extra top-level keys."""
    return {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "temperature": 1,
        "top_k": 5,
        "metadata": {"user_id": "user_abc_account__session_123"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "service_tier": "auto",
        "container": "cntr_1",
        "mcp_servers": [{"type": "url", "url": "https://mcp.test", "name": "x"}],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": "Long instructions", "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
                "input_examples": [{"command": "ls"}],
                "defer_loading": False,
                "strict": True,
                "eager_input_streaming": True,
            },
            {
                "name": "Read",
                "description": "Read a file",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"type": "web_fetch_20250910", "name": "web_fetch"},
            {"type": "code_execution_20250825", "name": "code_execution"},
            {"type": "memory_20250818", "name": "memory"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 10000, "strict": True},
            {"type": "bash_20250124", "name": "bash"},
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": ""},
                {"type": "text", "text": "fix the bug", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me look.", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"command": "ls"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": [{"type": "text", "text": "a.py"}, {"type": "text", "text": ""}]},
            ]},
            {"role": "system", "content": "Mid-conversation note."},
            {"role": "user", "content": [{"type": "text", "text": "  "}]},
            {"role": "user", "content": "continue"},
        ],
    }


BETAS_EXPECTED = ["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"]


@pytest.fixture
def sanitised() -> dict[str, Any]:
    return bedrock_invoke_body(claude_code_body(), anthropic_beta=CLAUDE_CODE_BETAS)


def test_input_not_mutated() -> None:
    body = claude_code_body()
    before = copy.deepcopy(body)
    bedrock_invoke_body(body, anthropic_beta=CLAUDE_CODE_BETAS)
    assert body == before


def test_top_level_whitelist_and_version(sanitised: dict[str, Any]) -> None:
    assert set(sanitised) <= ALLOWED_TOP_LEVEL
    assert sanitised["anthropic_version"] == "bedrock-2023-05-31"
    for key in ("model", "stream", "metadata", "context_management", "output_config", "service_tier", "container", "mcp_servers"):
        assert key not in sanitised


def test_betas_filtered(sanitised: dict[str, Any]) -> None:
    assert sanitised["anthropic_beta"] == BETAS_EXPECTED
    assert bedrock_betas(None) == []
    assert bedrock_betas(" , ,") == []
    assert "anthropic_beta" not in bedrock_invoke_body({"max_tokens": 1, "messages": []}, anthropic_beta="claude-code-20250219")
    assert set(BETAS_EXPECTED) <= BEDROCK_BETAS


def test_tools(sanitised: dict[str, Any]) -> None:
    tools = sanitised["tools"]
    assert [t["name"] for t in tools] == ["Bash", "Read", "str_replace_based_edit_tool", "bash"]
    assert set(tools[0]) == {"name", "description", "input_schema"}
    assert tools[1]["cache_control"] == {"type": "ephemeral"}
    assert tools[2] == {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
    assert sanitised["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_thinking_rules(sanitised: dict[str, Any]) -> None:
    assert "temperature" not in sanitised and "top_k" not in sanitised
    assert sanitised["max_tokens"] > sanitised["thinking"]["budget_tokens"]
    assert sanitised["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    low = bedrock_invoke_body(
        {"max_tokens": 1000, "thinking": {"type": "enabled", "budget_tokens": 2048}, "top_p": 0.5, "messages": []},
        anthropic_beta=None,
    )
    assert low["max_tokens"] == 3048 and "top_p" not in low
    plain = bedrock_invoke_body({"max_tokens": 10, "temperature": 0.2, "top_k": 3, "messages": []}, anthropic_beta=None)
    assert plain["temperature"] == 0.2 and plain["top_k"] == 3


def test_messages(sanitised: dict[str, Any]) -> None:
    messages = sanitised["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    first = messages[0]["content"]
    assert [b["text"] for b in first] == ["<system-reminder>ctx</system-reminder>", "fix the bug"]
    assert first[1]["cache_control"] == {"type": "ephemeral"}
    # Thinking blocks byte for byte, redacted thinking kept.
    assert messages[1]["content"][0] == {"type": "thinking", "thinking": "Let me look.", "signature": SIGNATURE}
    assert messages[1]["content"][1]["type"] == "redacted_thinking"
    assert messages[2]["content"][0]["content"] == [{"type": "text", "text": "a.py"}]
    # The turns around the folded system message and the dropped blank turn are merged.
    assert messages[2]["content"][1] == {"type": "text", "text": "continue"}
    assert sanitised["system"][-1] == {"type": "text", "text": "Mid-conversation note."}
    assert sanitised["system"][1]["cache_control"] == {"type": "ephemeral"}


def test_empty_text_cache_control_moves_back() -> None:
    out = bedrock_invoke_body({"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}]}]}, anthropic_beta=None)
    assert out["messages"][0]["content"] == [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]


def test_forced_server_tool_falls_back_to_auto() -> None:
    out = bedrock_invoke_body({"max_tokens": 5, "messages": [], "tools": [
        {"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "web_search"}}, anthropic_beta=None)
    assert out["tool_choice"] == {"type": "auto"}
    only_server = bedrock_invoke_body({"max_tokens": 5, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}],
                                       "tool_choice": {"type": "any"}}, anthropic_beta=None)
    assert "tools" not in only_server and "tool_choice" not in only_server


def test_string_system_with_folded_system_message() -> None:
    out = bedrock_invoke_body({"max_tokens": 5, "system": "S", "messages": [{"role": "system", "content": [{"type": "text", "text": "T"}]}]}, anthropic_beta=None)
    assert out["system"] == [{"type": "text", "text": "S"}, {"type": "text", "text": "T"}]
    assert out["messages"] == []


def test_response_normalised() -> None:
    resp = {
        "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3},
    }
    out = bedrock_invoke_response(resp, "claude-client-name")
    assert out["model"] == "claude-client-name" and "amazon-bedrock-invocationMetrics" not in out
    assert "amazon-bedrock-invocationMetrics" in resp
    Message.model_validate(out)


def test_stream_normaliser() -> None:
    norm = BedrockStreamNormaliser("client-model")
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_bdrk", "type": "message", "role": "assistant", "model": "anthropic.claude", "content": [],
                                               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 7}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 7, "invocationLatency": 500, "firstByteLatency": 300}},
    ]
    out: list[dict[str, Any]] = [e for event in events for e in norm.feed(event)] + norm.finish()
    for event in out:
        EVENT.validate_python(event)
    assert out[0]["message"]["model"] == "client-model"
    assert out[-1] == {"type": "message_stop"}
    assert norm.usage is not None and (norm.usage.prompt_tokens, norm.usage.completion_tokens) == (10, 7)


_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=8)),
    st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda t: {"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}, st.text(max_size=3)),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant", "system"]),
                       st.one_of(st.text(max_size=5), st.lists(_block, max_size=4))), max_size=6),
    st.dictionaries(st.sampled_from(["temperature", "top_k", "top_p", "metadata", "stream", "service_tier"]), st.integers(0, 3)),
    st.one_of(st.none(), st.integers(1024, 5000)),
    st.lists(st.sampled_from(sorted(BEDROCK_BETAS) + ["x-1", "claude-code-20250219"]), max_size=4),
)
def test_sanitiser_properties(messages: list[dict[str, Any]], extra: dict[str, Any], budget: int | None, betas: list[str]) -> None:
    body: dict[str, Any] = {"max_tokens": 1024, "messages": messages, **extra}
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    before = copy.deepcopy(body)
    out = bedrock_invoke_body(body, anthropic_beta=",".join(betas))
    assert body == before
    json.dumps(out)
    assert set(out) <= ALLOWED_TOP_LEVEL
    assert all(b in BEDROCK_BETAS for b in out.get("anthropic_beta", []))
    assert all(m["role"] != "system" for m in out["messages"])
    roles = [m["role"] for m in out["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:]))
    for message in out["messages"]:
        content = message["content"]
        if isinstance(content, str):
            assert content.strip()
        else:
            assert content and all(b.get("type") != "text" or b["text"].strip() for b in content)
    if budget is not None:
        assert out["max_tokens"] > budget and "temperature" not in out
    if out["messages"]:
        from sapproxy.simulator.anthropic_body import model_errors, schema_errors

        assert schema_errors(out) is None
        assert model_errors(out) is None
    # thinking blocks pass untouched
    thinking_in = [b for m in messages if m["role"] != "system" and isinstance(m["content"], list) for b in m["content"] if b["type"] == "thinking"]
    thinking_out = [b for m in out["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "thinking"]
    assert thinking_in == thinking_out


def test_server_tool_blocks_dropped_from_history() -> None:
    out = bedrock_invoke_body({"max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "text", "text": "searching"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "found"}]}]}, anthropic_beta=None)
    assert [b["text"] for b in out["messages"][0]["content"]] == ["searching", "found"]


def test_sanitised_claude_code_body_passes_the_simulators_bedrock_checks(sanitised: dict[str, Any]) -> None:
    from sapproxy.simulator.anthropic_body import model_errors, schema_errors

    assert schema_errors(sanitised) is None
    assert model_errors(sanitised) is None


def test_beta_allow_list_within_the_simulators() -> None:
    from sapproxy.simulator.anthropic_body import BEDROCK_BETAS as SIMULATED

    assert BEDROCK_BETAS <= SIMULATED
