"""
The simulator holds the gateway to the upstream rules behind the items of issue 14 finished after the
first round (see tests/translate/test_tr_audit_open.py for the converter side).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from simhelp import Driver

from sapproxy.translate.wire.converse import ir_request_to_converse

TOOL = {"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object"}}}}


def _converse(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 100},
            **extra}


# ----------------------------------------------------------------- 14. parallel tool use on Converse

@pytest.mark.parametrize("body, message", [
    (_converse(toolConfig={"tools": [TOOL], "toolChoice": {"tool": {"name": "weather"}}},
               additionalModelRequestFields={"tool_choice": {"type": "tool", "name": "weather",
                                                             "disable_parallel_tool_use": True}}),
     "The additional field tool_choice/type conflicts with the existing field toolConfig.toolChoice.tool"),
    (_converse(toolConfig={"tools": [TOOL]},
               additionalModelRequestFields={"tool_choice": {"disable_parallel_tool_use": True}}),
     "missing field `type`"),
    (_converse(additionalModelRequestFields={"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}),
     "tool_choice may only be specified while providing tools"),
    (_converse(toolConfig={"tools": [TOOL]},
               additionalModelRequestFields={"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}}),
     "expected type: boolean"),
])
def test_item14_converse_refuses_a_tool_choice_bedrock_refuses(body: dict[str, Any], message: str) -> None:
    r = Driver().post("d-sonnet", "converse", body)
    assert r.status == 400, r.body
    assert message in r.json()["message"]
    assert r.header("x-amzn-ErrorType").startswith("ValidationException")


def test_item14_disabled_parallel_tool_use_gives_one_call() -> None:
    ir = {"max_tokens": 100, "messages": [{"role": "user", "content": 'weather? #sim{"tool_calls": 3}'}],
          "tools": [{"name": "weather", "input_schema": {"type": "object"}}]}
    parallel = Driver().post("d-sonnet", "converse", ir_request_to_converse({**ir, "tool_choice": {"type": "auto"}}))
    assert parallel.status == 200, parallel.body
    assert len(parallel.json()["output"]["message"]["content"]) == 3
    for choice in ({"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "weather"}):
        body = ir_request_to_converse({**ir, "tool_choice": {**choice, "disable_parallel_tool_use": True}})
        r = Driver().post("d-sonnet", "converse", body)
        assert r.status == 200, r.body
        calls = [b for b in r.json()["output"]["message"]["content"] if "toolUse" in b]
        assert len(calls) == 1
    # without tool_choice in the IR the OpenAI client's parallel_tool_calls=false still arrives
    no_choice = ir_request_to_converse(ir)
    assert "additionalModelRequestFields" not in no_choice


# ----------------------------------------------------------------- 20. documents named by URL

PDF64 = "JVBERi0xLjcKJSVFT0YK"  # "%PDF-1.7\n%%EOF\n"


def test_item20_bedrock_takes_documents_inline_only() -> None:
    def invoke(source: dict[str, Any]) -> Any:
        return Driver().post("d-sonnet", "invoke", {
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": [
                {"type": "document", "source": source}, {"type": "text", "text": "summarise"}]}]})
    r = invoke({"type": "url", "url": "https://example.com/a.pdf"})
    assert r.status == 400 and "messages.0.content.0.document.source: Input tag 'url'" in r.json()["message"]
    assert invoke({"type": "base64", "media_type": "application/pdf", "data": PDF64}).status == 200

    def converse(source: dict[str, Any]) -> Any:
        return Driver().post("d-sonnet", "converse", _converse(messages=[{"role": "user", "content": [
            {"document": {"format": "pdf", "name": "a", "source": source}}, {"text": "summarise"}]}]))
    r = converse({"url": "https://example.com/a.pdf"})
    assert r.status == 400 and "extraneous key [url] is not permitted" in r.json()["message"]
    assert converse({"bytes": PDF64}).status == 200


# ----------------------------------------------------------------- 11. structured outputs for Claude

CLOSED = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}


def _invoke(**extra: Any) -> dict[str, Any]:
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "weather?"}]}], **extra}


def test_item11_claude_45_answers_in_the_schema() -> None:
    r = Driver().post("d-sonnet", "invoke", _invoke(output_config={"format": {"type": "json_schema", "schema": CLOSED}}))
    assert r.status == 200, r.body
    (block,) = r.json()["content"]
    assert block["type"] == "text" and set(json.loads(block["text"])) == {"city"}
    strict = _invoke(tools=[{"name": "f", "strict": True, "input_schema": {"type": "object"}}])
    assert Driver().post("d-haiku", "invoke", strict).status == 200


@pytest.mark.parametrize("deployment, extra, message", [
    ("d-opus", {"output_config": {"format": {"type": "json_schema", "schema": CLOSED}}},
     "output_config.format: structured outputs are not supported for model claude-opus-4-1-20250805"),
    ("d-opus", {"tools": [{"name": "f", "strict": True, "input_schema": {"type": "object"}}]},
     "tools.0.strict: structured outputs are not supported"),
    ("d-sonnet", {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false"),
    ("d-sonnet", {"output_config": {"format": {"type": "json_schema", "schema": {
        "type": "object", "additionalProperties": False, "properties": {"a": {"type": "object"}}}}}},
     "output_config.format.schema.properties.a: For 'object' type"),
    ("d-sonnet", {"output_config": {"effort": "high"}}, "output_config.effort: Extra inputs are not permitted"),
])
def test_item11_bedrock_refuses_structured_outputs_where_claude_refuses(deployment: str, extra: dict[str, Any],
                                                                        message: str) -> None:
    r = Driver().post(deployment, "invoke", _invoke(**extra))
    assert r.status == 400, r.body
    assert r.json()["message"].startswith("The model returned the following errors: ")
    assert message in r.json()["message"]


# ----------------------------------------------------------------- 16. logprobs and candidates on Vertex

def _vertex(**gen: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}], "generationConfig": gen}


def test_item16_vertex_gives_candidates_and_logprobs() -> None:
    r = Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent",
                      _vertex(candidateCount=2, responseLogprobs=True, logprobs=2))
    assert r.status == 200, r.body
    candidates = r.json()["candidates"]
    assert [c["index"] for c in candidates] == [0, 1]
    texts = ["".join(p["text"] for p in c["content"]["parts"]) for c in candidates]
    assert texts[0] != texts[1]
    for c, text in zip(candidates, texts):
        chosen = c["logprobsResult"]["chosenCandidates"]
        assert "".join(t["token"] for t in chosen) == text
        assert all(len(top["candidates"]) == 2 for top in c["logprobsResult"]["topCandidates"])


@pytest.mark.parametrize("gen, message", [
    ({"candidateCount": 9}, "candidateCount must be in the range [1, 8]"),
    ({"logprobs": 2}, "logprobs can only be set when responseLogprobs is true"),
    ({"responseLogprobs": True, "logprobs": 21}, "logprobs must be in the range [0, 20]"),
])
def test_item16_vertex_refuses_what_vertex_refuses(gen: dict[str, Any], message: str) -> None:
    r = Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent", _vertex(**gen))
    assert r.status == 400 and message in r.json()["error"]["message"]
