"""
Converter-level tests for the items of the translation audit (issue 14) finished after the first round:
each test names its item.
"""

from __future__ import annotations

from typing import Any

import pytest

from sapproxy.translate.client.openai_chat import chat_request_to_ir
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.wire.converse import ir_request_to_converse

WEATHER = {"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _ir(**extra: Any) -> dict[str, Any]:
    return {"max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER], **extra}


# ----------------------------------------------------------------- 14. parallel tool use on Converse

@pytest.mark.parametrize("choice, tool_choice", [
    ({"type": "auto"}, {"auto": {}}),
    ({"type": "any"}, {"any": {}}),
    ({"type": "tool", "name": "weather"}, {"tool": {"name": "weather"}}),
])
def test_item14_disable_parallel_tool_use_reaches_converse(choice: dict[str, Any], tool_choice: dict[str, Any]) -> None:
    out = ir_request_to_converse(_ir(tool_choice={**choice, "disable_parallel_tool_use": True}))
    assert out["toolConfig"]["toolChoice"] == tool_choice
    # the type is not said twice (Bedrock refuses tool_choice/type next to toolConfig.toolChoice)
    assert out["additionalModelRequestFields"] == {"tool_choice": {"disable_parallel_tool_use": True}}


def test_item14_openai_parallel_tool_calls_false_reaches_converse() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "parallel_tool_calls": False,
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}
    out = ir_request_to_converse(chat_request_to_ir(body))
    assert out["additionalModelRequestFields"] == {"tool_choice": {"disable_parallel_tool_use": True}}
    assert out["toolConfig"]["toolChoice"] == {"auto": {}}


def test_item14_parallel_use_allowed_or_no_tools_sends_nothing_extra() -> None:
    assert "additionalModelRequestFields" not in ir_request_to_converse(_ir(tool_choice={"type": "auto"}))
    none = ir_request_to_converse(_ir(tool_choice={"type": "none", "disable_parallel_tool_use": True}))
    assert "toolConfig" not in none and "additionalModelRequestFields" not in none


def test_item14_thinking_and_parallel_share_the_additional_fields() -> None:
    out = ir_request_to_converse(_ir(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024},
                                     tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert out["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "tool_choice": {"disable_parallel_tool_use": True}}


# ----------------------------------------------------------------- 20. documents named by URL

def test_item20_a_fetched_document_reaches_converse_and_invoke_as_bytes() -> None:
    from sapproxy.translate.remote_images import inline_images
    from sapproxy.translate.wire.bedrock_invoke import bedrock_invoke_body

    url = "https://docs.example/q3.pdf"
    body = {"max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Q3: report", "source": {"type": "url", "url": url}},
        {"type": "text", "text": "summarise"}]}]}
    inlined = inline_images("anthropic", body, {}, {url: ("application/pdf", b"%PDF-1.7")})
    converse = ir_request_to_converse(inlined)
    assert converse["messages"][0]["content"][0] == {
        "document": {"format": "pdf", "name": "Q3 report", "source": {"bytes": "JVBERi0xLjc="}}}
    invoke = bedrock_invoke_body(inlined, anthropic_beta=None)
    assert invoke["messages"][0]["content"][0]["source"] == {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjc="}
    # unfetched, the converter says so rather than sending what Bedrock refuses
    with pytest.raises(InvalidRequest, match="base64"):
        ir_request_to_converse(body)
