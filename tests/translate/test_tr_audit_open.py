"""
Converter-level tests for the items of the translation audit (issue 14) finished after the first round:
each test names its item.
"""

from __future__ import annotations

import json
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


# ----------------------------------------------------------------- 11. structured outputs for Claude

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "days": {"type": "array", "items": {"type": "object", "properties": {
                                               "t": {"type": "number"}}}}}, "required": ["city"]}
CLOSED = {"type": "object", "properties": {"city": {"type": "string"},
                                           "days": {"type": "array", "items": {"type": "object", "properties": {
                                               "t": {"type": "number"}}, "additionalProperties": False}}},
          "required": ["city"], "additionalProperties": False}


def _openai_structured(strict: bool = True) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "go"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": strict, "schema": SCHEMA}},
            "tools": [{"type": "function", "function": {"name": "f", "strict": True,
                                                        "parameters": {"type": "object", "properties": {}}}}]}


@pytest.mark.parametrize("model", ["anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-haiku",
                                   "anthropic--claude-4.5-opus", "claude-opus-4-6"])
def test_item11_claude_that_enforces_schemas_gets_output_config_and_strict_tools(model: str) -> None:
    from sapproxy.translate.wire.bedrock_invoke import bedrock_invoke_body

    out = bedrock_invoke_body(chat_request_to_ir(_openai_structured()), anthropic_beta=None, model=model)
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": CLOSED}}
    assert out["system"] == [{"type": "text", "text": "be brief"}]  # no prompt instruction besides
    assert out["tools"][0]["strict"] is True
    assert "anthropic_beta" not in out  # generally available: no beta


@pytest.mark.parametrize("model", ["anthropic--claude-4.1-opus", "anthropic--claude-4-sonnet",
                                   "anthropic--claude-3.7-sonnet"])
def test_item11_older_claude_keeps_the_instruction_and_loses_strict(model: str) -> None:
    from sapproxy.translate.wire.bedrock_invoke import bedrock_invoke_body

    out = bedrock_invoke_body(chat_request_to_ir(_openai_structured()), anthropic_beta=None, model=model)
    assert "output_config" not in out and "strict" not in out["tools"][0]
    assert [b["text"] for b in out["system"]] == [
        "be brief", "Respond only with a single valid JSON object, with no text before or after it. It must conform "
        "to this JSON schema: " + json.dumps(SCHEMA)]


def test_item11_a_non_strict_schema_stays_an_instruction() -> None:
    from sapproxy.translate.wire.bedrock_invoke import bedrock_invoke_body

    out = bedrock_invoke_body(chat_request_to_ir(_openai_structured(strict=False)), anthropic_beta=None,
                              model="anthropic--claude-4.5-sonnet")
    assert "output_config" not in out and len(out["system"]) == 2


def test_item11_anthropic_clients_format_is_an_instruction_where_it_cannot_be_enforced() -> None:
    from sapproxy.translate.wire.bedrock_invoke import bedrock_invoke_body

    body = {"max_tokens": 50, "system": "be brief", "messages": [{"role": "user", "content": "go"}],
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}
    new = bedrock_invoke_body(body, anthropic_beta=None, model="anthropic--claude-4.5-sonnet")
    assert new["output_config"] == {"format": {"type": "json_schema", "schema": CLOSED}} and new["system"] == "be brief"
    old = bedrock_invoke_body(body, anthropic_beta=None, model="anthropic--claude-4-sonnet")
    assert "output_config" not in old
    assert old["system"][0] == {"type": "text", "text": "be brief"}
    assert old["system"][1]["text"].endswith("It must conform to this JSON schema: " + json.dumps(SCHEMA))


def test_item11_strict_tools_reach_gpt() -> None:
    from sapproxy.translate.wire.openai_chat import ir_request_to_chat

    out = ir_request_to_chat(chat_request_to_ir(_openai_structured()), reasoning_model=False)
    assert out["tools"][0]["function"]["strict"] is True
    assert out["response_format"]["json_schema"]["strict"] is True


# ----------------------------------------------------------------- 13. which stop sequence, off Claude

def test_item13_gpt_and_gemini_cannot_say_which_stop_sequence_matched() -> None:
    """OpenAI's C{stop} and Gemini's C{STOP} mean both "the model ended" and "a stop sequence matched" and
    name no sequence, so Anthropic clients get C{end_turn} with C{stop_sequence: null} (README)."""
    from sapproxy.translate.wire.gemini import gemini_response_to_ir
    from sapproxy.translate.wire.openai_chat import chat_response_to_ir

    gpt = chat_response_to_ir({"id": "c", "model": "gpt-4.1", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "one two"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}, "gpt-4.1")
    gemini = gemini_response_to_ir({"candidates": [{"content": {"role": "model", "parts": [{"text": "one two"}]},
                                                    "finishReason": "STOP"}],
                                    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}},
                                   "gemini-2.5-pro")
    for response in (gpt, gemini):
        assert (response["stop_reason"], response["stop_sequence"]) == ("end_turn", None)


# ----------------------------------------------------------------- 16. logprobs and n on Gemini

def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_item16_logprobs_and_n_reach_gemini() -> None:
    from sapproxy.translate.fit import fit_request
    from sapproxy.translate.wire.gemini import ir_request_to_gemini

    ir = fit_request(chat_request_to_ir(_chat(logprobs=True, top_logprobs=3, n=2)), "gemini", "gemini-2.5-pro").ir
    gen = ir_request_to_gemini(ir)["generationConfig"]
    assert (gen["responseLogprobs"], gen["logprobs"], gen["candidateCount"]) == (True, 3, 2)
    plain = ir_request_to_gemini(fit_request(chat_request_to_ir(_chat(logprobs=False, n=1)), "gemini",
                                             "gemini-2.5-pro").ir)
    assert not {"responseLogprobs", "logprobs", "candidateCount"} & set(plain.get("generationConfig", {}))


@pytest.mark.parametrize("extra, upstream, param, message", [
    ({"logprobs": True}, "invoke", "logprobs", "logprobs is not supported for this model (only for Gemini models)"),
    ({"n": 2}, "converse", "n", "n greater than 1 is not supported for this model"),
    ({"logprobs": True, "top_logprobs": 2}, "openai", "logprobs", "only for Gemini"),
    ({"n": 3, "stream": True}, "gemini", "n", "n greater than 1 is not supported in streams for Gemini models"),
    ({"logprobs": True, "stream": True}, "gemini", "logprobs", "not supported in streams"),
])
def test_item16_refused_where_it_cannot_come_back(extra: dict[str, Any], upstream: str, param: str,
                                                  message: str) -> None:
    from sapproxy.translate.fit import fit_request

    with pytest.raises(InvalidRequest) as refused:
        fit_request(chat_request_to_ir(_chat(**extra)), upstream, "m")
    assert refused.value.param == param and message in str(refused.value)


@pytest.mark.parametrize("extra, param", [({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
                                          ({"top_logprobs": 2}, "top_logprobs"), ({"n": 0}, "n"),
                                          ({"n": "2"}, "n"), ({"logprobs": "yes"}, "logprobs")])
def test_item16_bad_values_are_named(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        chat_request_to_ir(_chat(**extra))
    assert refused.value.param == param


def test_item16_gemini_candidates_and_logprobs_come_back_as_openai_choices() -> None:
    from sapproxy.translate.client.openai_chat import ir_response_to_chat
    from sapproxy.translate.wire.gemini import gemini_response_to_ir

    def candidate(text: str, index: int) -> dict[str, Any]:
        return {"index": index, "content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                "avgLogprobs": -0.2,
                "logprobsResult": {"chosenCandidates": [{"token": "Hé", "logProbability": -0.25, "tokenId": 5}],
                                   "topCandidates": [{"candidates": [
                                       {"token": "Hé", "logProbability": -0.25, "tokenId": 5},
                                       {"token": "Hi", "logProbability": -1.5, "tokenId": 6}]}]}}

    resp = {"candidates": [candidate("Hé", 0), candidate("Hé there", 1)],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}
    out = ir_response_to_chat(gemini_response_to_ir(resp, "gemini-2.5-pro"), "gemini-2.5-pro", created=1)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert [c["message"]["content"] for c in out["choices"]] == ["Hé", "Hé there"]
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "stop"]
    hi = {"token": "Hé", "logprob": -0.25, "bytes": [72, 195, 169]}
    assert out["choices"][0]["logprobs"] == {"refusal": None, "content": [
        {**hi, "top_logprobs": [hi, {"token": "Hi", "logprob": -1.5, "bytes": [72, 105]}]}]}
    assert out["usage"]["completion_tokens"] == 4
    # no candidates asked for, none given: the usual single choice without logprobs
    single = ir_response_to_chat(gemini_response_to_ir({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": "STOP"}]}, "g"), "g", created=1)
    assert len(single["choices"]) == 1 and single["choices"][0]["logprobs"] is None


def test_item11_converse_tells_an_anthropic_clients_schema_rather_than_dropping_it() -> None:
    body = {"max_tokens": 50, "system": "be brief", "messages": [{"role": "user", "content": "go"}],
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}
    out = ir_request_to_converse(body)
    assert out["system"] == [{"text": "be brief"}, {"text": "Respond only with a single valid JSON object, with no "
                             "text before or after it. It must conform to this JSON schema: " + json.dumps(SCHEMA)}]
    assert "outputConfig" not in out and "output_config" not in json.dumps(out)


def test_item14_models_other_than_claude_on_converse_get_no_claude_tool_choice() -> None:
    from sapproxy.translate.wire.converse import for_model

    body = ir_request_to_converse(_ir(tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert for_model(body, "anthropic.claude-sonnet-4-5-20250929-v1:0") == body
    nova = for_model(body, "amazon.nova-pro-v1:0")
    assert "additionalModelRequestFields" not in nova and nova["toolConfig"] == body["toolConfig"]
