"""
Converter-level tests for the translation audit (issue 14): each test names its item.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sapproxy.translate.client.openai_chat import AnthropicToOpenAIStream, chat_request_to_ir
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.fit import fit_request, upstream_kind
from sapproxy.translate.model_limits import claude_model, fit_claude_sampling, max_output_tokens
from sapproxy.translate.tool_names import RULES, ToolNames, encode_tool_names
from sapproxy.translate.tool_support import fit_tools
from sapproxy.translate.wire.bedrock_invoke import bedrock_invoke_body
from sapproxy.translate.wire.converse import ir_request_to_converse
from sapproxy.translate.wire.gemini import ir_request_to_gemini
from sapproxy.translate.wire.openai_chat import ir_request_to_chat


# ----------------------------------------------------------------- 1. system turns inside messages to GPT

def test_item1_system_messages_inside_the_conversation_reach_gpt_in_place() -> None:
    body = {"system": "top", "max_tokens": 10, "messages": [
        {"role": "user", "content": "a"},
        {"role": "system", "content": [{"type": "text", "text": "mid"}]},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "late"},
        {"role": "user", "content": "c"},
    ]}
    out = ir_request_to_chat(body, reasoning_model=False)
    assert [(m["role"], m["content"]) for m in out["messages"]] == [
        ("system", "top"), ("user", "a"), ("system", "mid"), ("assistant", "b"), ("system", "late"), ("user", "c")]
    reasoning = ir_request_to_chat(body, reasoning_model=True)
    assert [m["role"] for m in reasoning["messages"]] == ["developer", "user", "developer", "assistant", "developer", "user"]


def test_item1_an_empty_system_turn_is_left_out() -> None:
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": ""}]}
    assert ir_request_to_chat(body, reasoning_model=False)["messages"] == [{"role": "user", "content": "a"}]


# ----------------------------------------------------------------- 2, 3. Claude's sampling rules

@pytest.mark.parametrize("name, tier, version", [
    ("anthropic--claude-4.5-sonnet", "sonnet", (4, 5)),
    ("anthropic--claude-4-opus", "opus", (4, 0)),
    ("anthropic--claude-4.1-opus", "opus", (4, 1)),
    ("claude-sonnet-4-5-20250929", "sonnet", (4, 5)),
    ("claude-sonnet-4-20250514", "sonnet", (4, 0)),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", "haiku", (4, 5)),
    ("anthropic--claude-3.7-sonnet", "sonnet", (3, 7)),
])
def test_claude_generations_are_read_from_names(name: str, tier: str, version: tuple[int, int]) -> None:
    model = claude_model(name)
    assert model is not None and (model.tier, model.version) == (tier, version)


@pytest.mark.parametrize("model, sent, kept", [
    # the one-sampler generations: top_p goes, unless temperature is its default and top_p is not
    ("anthropic--claude-4.5-sonnet", {"temperature": 0.2, "top_p": 1}, {"temperature": 0.2}),
    ("anthropic--claude-4.5-haiku", {"temperature": 0.2, "top_p": 0.5}, {"temperature": 0.2}),
    ("anthropic--claude-4.1-opus", {"temperature": 1, "top_p": 0.5}, {"top_p": 0.5}),
    ("anthropic--claude-4.5-sonnet", {"temperature": 1, "top_p": 1}, {"temperature": 1}),
    ("anthropic--claude-4.5-sonnet", {"top_p": 0.3}, {"top_p": 0.3}),
    # older generations take both
    ("anthropic--claude-4-sonnet", {"temperature": 0.2, "top_p": 0.5}, {"temperature": 0.2, "top_p": 0.5}),
    ("anthropic--claude-4-opus", {"temperature": 0.2, "top_p": 1}, {"temperature": 0.2, "top_p": 1}),
    # item 3: above 1 is clamped, then the rule above applies
    ("anthropic--claude-4-sonnet", {"temperature": 1.7}, {"temperature": 1}),
    ("anthropic--claude-4.5-sonnet", {"temperature": 2, "top_p": 0.9}, {"top_p": 0.9}),
])
def test_items2_3_claude_sampling(model: str, sent: dict[str, Any], kept: dict[str, Any]) -> None:
    body = {"max_tokens": 5, "messages": [], **sent}
    out = fit_claude_sampling(body, model)
    assert {k: v for k, v in out.items() if k in ("temperature", "top_p")} == kept
    assert body == {"max_tokens": 5, "messages": [], **sent}  # not mutated


def test_items2_3_openai_defaults_reach_claude_and_gemini_as_each_accepts() -> None:
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "hi"}], "temperature": 1.5, "top_p": 1})
    assert fit_request(ir, "invoke", "anthropic--claude-4.5-sonnet").ir["temperature"] == 1
    assert "top_p" not in fit_request(ir, "invoke", "anthropic--claude-4.5-sonnet").ir
    converse = ir_request_to_converse(fit_request(ir, "converse", "anthropic--claude-4.5-sonnet").ir)
    assert converse["inferenceConfig"] == {"maxTokens": 4096, "temperature": 1}
    # Gemini takes temperatures up to 2 and both parameters: left as sent
    gemini = ir_request_to_gemini(fit_request(ir, "gemini", "gemini-2.5-pro").ir)
    assert gemini["generationConfig"]["temperature"] == 1.5 and gemini["generationConfig"]["topP"] == 1


# ----------------------------------------------------------------- 4. streamed tool calls without arguments

def _tool_stream(deltas: list[str]) -> list[dict[str, Any]]:
    stream = AnthropicToOpenAIStream("m", completion_id="c", created=1, include_usage=False)
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": d}} for d in deltas),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    return [chunk for event in events for chunk in stream.feed(event)]


def _arguments(chunks: list[dict[str, Any]]) -> str:
    return "".join(call["function"].get("arguments") or "" for chunk in chunks for choice in chunk["choices"]
                   for call in choice["delta"].get("tool_calls") or ())


@pytest.mark.parametrize("deltas", [[], [""]])
def test_item4_a_streamed_call_without_arguments_gives_an_empty_object(deltas: list[str]) -> None:
    chunks = _tool_stream(deltas)
    assert json.loads(_arguments(chunks)) == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_item4_arguments_that_came_are_not_added_to() -> None:
    assert _arguments(_tool_stream(['{"a":', ' 1}'])) == '{"a": 1}'


# ----------------------------------------------------------------- 5. tool names per upstream, reversibly

LONG_MCP = "mcp__claude_ai_Atlassian__getConfluencePageDescendantsWithAVeryLongNameIndeed_v2"  # 83 chars


@pytest.mark.parametrize("upstream, name", [
    ("openai", LONG_MCP), ("openai", "my.tool"), ("openai", "tool with spaces"), ("openai", "ünï"),
    ("gemini", "1st-tool"), ("gemini", "-dash"), ("gemini", LONG_MCP), ("gemini", "a/b"),
    ("converse", "ns.tool"), ("converse", LONG_MCP), ("invoke", "x" * 130), ("invoke", "a.b"),
])
def test_item5_refused_names_are_rewritten_to_accepted_ones(upstream: str, name: str) -> None:
    rule = RULES[upstream]
    assert not rule.accepts(name)
    encoded = rule.encode(name)
    assert rule.accepts(encoded)
    assert rule.encode(name) == encoded  # the same in every request: history and tools agree


@pytest.mark.parametrize("upstream, name", [
    ("openai", "get_weather"), ("openai", "1-tool"), ("gemini", "ns.tool:v1"), ("gemini", "_x"),
    ("invoke", "mcp__" + "x" * 100), ("converse", "a-b_c"),
])
def test_item5_accepted_names_go_as_they_are(upstream: str, name: str) -> None:
    assert RULES[upstream].encode(name) == name


def test_item5_names_that_differ_only_in_refused_characters_stay_apart() -> None:
    rule = RULES["openai"]
    assert rule.encode("a.b") != rule.encode("a:b") != rule.encode("a_b")


def test_item5_tools_history_and_choice_are_renamed_and_read_back() -> None:
    ir = {
        "max_tokens": 10,
        "tools": [{"name": LONG_MCP, "input_schema": {"type": "object"}}, {"name": "ok", "input_schema": {"type": "object"}},
                  {"type": "bash_20250124", "name": "bash"}],
        "tool_choice": {"type": "tool", "name": LONG_MCP},
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": LONG_MCP, "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
        ],
    }
    out, names = encode_tool_names(ir, "openai")
    sent = RULES["openai"].encode(LONG_MCP)
    assert out["tools"][2] == {"type": "bash_20250124", "name": "bash"}  # Anthropic-defined: its fixed name
    fitted = fit_request(ir, "openai", "gpt-4.1")
    assert fitted.ir["tools"][0]["name"] == sent and fitted.names.client_name(sent) == LONG_MCP
    assert [t["name"] for t in out["tools"]] == [sent, "ok", "bash"]
    assert out["tool_choice"]["name"] == sent
    assert out["messages"][1]["content"][0]["name"] == sent
    assert ir["tools"][0]["name"] == LONG_MCP  # not mutated
    chat = ir_request_to_chat(fitted.ir, reasoning_model=False)
    assert chat["tools"][0]["function"]["name"] == sent
    assert chat["messages"][1]["tool_calls"][0]["function"]["name"] == sent
    # the answer: whole and streamed
    message = {"content": [{"type": "tool_use", "id": "t2", "name": sent, "input": {}}, {"type": "tool_use", "id": "t3", "name": "other", "input": {}}]}
    assert [b["name"] for b in names.restore_message(message)["content"]] == [LONG_MCP, "other"]
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t2", "name": sent, "input": {}}}
    assert names.restorer().feed(start)[0]["content_block"]["name"] == LONG_MCP
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}
    assert names.restorer().feed(text) == [text]


def test_item5_gemini_function_responses_use_the_renamed_call() -> None:
    ir = {"max_tokens": 10, "tools": [{"name": "9lives", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}],
          "messages": [{"role": "user", "content": "go"},
                       {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "9lives", "input": {}}]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}
    fitted = fit_request(ir, "gemini", "gemini-2.5-pro")
    body = ir_request_to_gemini(fitted.ir)
    name = body["tools"][0]["functionDeclarations"][0]["name"]
    assert RULES["gemini"].accepts(name) and name != "9lives"
    assert body["contents"][1]["parts"][0]["functionCall"]["name"] == name
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == name
    assert fitted.names.client_name(name) == "9lives"


def test_item5_no_renaming_no_restorer_state() -> None:
    _, names = encode_tool_names({"tools": [{"name": "fine", "input_schema": {}}], "messages": []}, "openai")
    assert not names.renamed and isinstance(names, ToolNames)


# ----------------------------------------------------------------- 7. per-model output ceilings

@pytest.mark.parametrize("name, ceiling", [
    ("gemini-2.5-pro", 65536), ("gemini-2.5-flash", 65536), ("gemini-3-pro-preview", 65536), ("gemini-2.0-flash", 8192),
    ("anthropic--claude-4.5-sonnet", 64000), ("anthropic--claude-4.1-opus", 32000), ("anthropic--claude-4-opus", 32000),
    ("anthropic--claude-4.5-haiku", 64000), ("anthropic--claude-3.7-sonnet", 64000), ("anthropic--claude-3.5-sonnet", 8192),
    ("anthropic--claude-3-haiku", 4096), ("claude-opus-4-5-20251101", 64000), ("gpt-4.1", None), ("mystery", None),
])
def test_item7_known_output_ceilings(name: str, ceiling: int | None) -> None:
    assert max_output_tokens(name) == ceiling


def test_item7_the_default_limit_is_the_callers_unless_the_client_set_one() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert chat_request_to_ir(body, default_max_tokens=65536)["max_tokens"] == 65536
    assert chat_request_to_ir({**body, "max_tokens": 77}, default_max_tokens=65536)["max_tokens"] == 77
    gemini = ir_request_to_gemini(chat_request_to_ir(body, default_max_tokens=65536))
    assert gemini["generationConfig"]["maxOutputTokens"] == 65536


# ----------------------------------------------------------------- 8. typed and server tools, one rule

TYPED = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
]


def _ir_with(tools: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"max_tokens": 100, "messages": [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "found"}]},
        {"role": "user", "content": "thanks"}], "tools": tools, **extra}


@pytest.mark.parametrize("upstream", ["openai", "gemini", "converse"])
def test_item8_function_calling_upstreams_get_client_tools_bash_and_editor(upstream: str) -> None:
    out, dropped = fit_tools(_ir_with(TYPED), upstream)
    assert [t["name"] for t in out["tools"]] == ["get_weather", "bash", "str_replace_based_edit_tool"]
    assert all("type" not in t and t["input_schema"]["type"] == "object" for t in out["tools"])
    assert dropped == ["web_search (web_search_20250305)", "computer (computer_20250124)", "web_fetch (web_fetch_20250910)"]
    assert [b["type"] for b in out["messages"][1]["content"]] == ["text"]
    # and every converter takes the result
    convert = {"openai": lambda ir: ir_request_to_chat(ir, reasoning_model=False), "gemini": ir_request_to_gemini,
               "converse": ir_request_to_converse}[upstream]
    assert json.dumps(convert(out)).count("str_replace_based_edit_tool") == 1


def test_item8_invoke_keeps_the_anthropic_defined_client_tools() -> None:
    out, dropped = fit_tools(_ir_with(TYPED), "invoke")
    assert [t.get("type") for t in out["tools"]] == [None, "bash_20250124", "text_editor_20250728", "computer_20250124"]
    assert dropped == ["web_search (web_search_20250305)", "web_fetch (web_fetch_20250910)"]


def test_item8_a_forced_dropped_tool_becomes_auto_and_no_tools_no_choice() -> None:
    out, _ = fit_tools(_ir_with(TYPED, tool_choice={"type": "tool", "name": "web_search", "disable_parallel_tool_use": True}), "openai")
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    out, dropped = fit_tools(_ir_with([TYPED[1]], tool_choice={"type": "any"}), "gemini")
    assert "tools" not in out and "tool_choice" not in out and dropped == ["web_search (web_search_20250305)"]


def test_item8_upstream_kinds() -> None:
    assert [upstream_kind("openai", False), upstream_kind("gemini", False), upstream_kind("claude", True),
            upstream_kind("claude", False)] == ["openai", "gemini", "converse", "invoke"]


# ----------------------------------------------------------------- 11. json_object to Gemini

def test_item11_json_object_sets_gemini_response_mime_type() -> None:
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})
    assert ir_request_to_gemini(ir)["generationConfig"]["responseMimeType"] == "application/json"
    assert ir_request_to_chat(ir, reasoning_model=False)["response_format"] == {"type": "json_object"}


# ----------------------------------------------------------------- 13. stop sequences

def test_item13_whitespace_stops_reach_gpt_and_gemini_but_not_claude() -> None:
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "stop": ["\n\n", "END"]})
    assert ir_request_to_gemini(ir)["generationConfig"]["stopSequences"] == ["\n\n", "END"]
    assert fit_request(ir, "invoke", "anthropic--claude-4.5-sonnet").ir["stop_sequences"] == ["END"]
    only_blank = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "stop": " "})
    assert "stop_sequences" not in fit_request(only_blank, "converse", "anthropic--claude-4-sonnet").ir
    assert ir_request_to_chat({"max_tokens": 5, "messages": [], "stop_sequences": [" ", "\n"]},
                              reasoning_model=False)["stop"] == [" ", "\n"]


def test_item13_more_stop_sequences_than_the_upstream_takes_are_refused_not_cut() -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop_sequences": list("abcde")}
    with pytest.raises(InvalidRequest) as gpt:
        ir_request_to_chat(body, reasoning_model=False)
    assert gpt.value.param == "stop_sequences" and "at most 4" in gpt.value.message
    assert ir_request_to_gemini(body)["generationConfig"]["stopSequences"] == list("abcde")
    with pytest.raises(InvalidRequest) as gemini:
        ir_request_to_gemini({**body, "stop_sequences": list("abcdef")})
    assert "at most 5" in gemini.value.message


def test_item13_converse_asks_which_stop_sequence_matched() -> None:
    from sapproxy.translate.wire.converse import converse_response_to_ir

    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop_sequences": ["END"]}
    assert ir_request_to_converse(body)["additionalModelResponseFieldPaths"] == ["/stop_sequence"]
    assert "additionalModelResponseFieldPaths" not in ir_request_to_converse({**body, "stop_sequences": []})
    answer = converse_response_to_ir({"output": {"message": {"role": "assistant", "content": [{"text": "a"}]}},
                                      "stopReason": "end_turn", "usage": {},
                                      "additionalModelResponseFields": {"stop_sequence": "END"}}, "m")
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("stop_sequence", "END")


# ----------------------------------------------------------------- 14. Converse tool_choice none

def test_item14_converse_tool_choice_none_leaves_the_tools_out_unless_history_needs_them() -> None:
    tool = {"name": "w", "input_schema": {"type": "object"}}
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [tool], "tool_choice": {"type": "none"}}
    assert "toolConfig" not in ir_request_to_converse(body)
    history = {**body, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]}
    config = ir_request_to_converse(history)["toolConfig"]
    assert config == {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {"type": "object"}}}}]}


# ----------------------------------------------------------------- 16. seed, penalties, logprobs

def test_item16_seed_and_penalties_reach_gemini_and_are_refused_for_claude() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5}
    ir = chat_request_to_ir(body)
    gen = ir_request_to_gemini(ir)["generationConfig"]
    assert (gen["seed"], gen["presencePenalty"], gen["frequencyPenalty"]) == (7, 0.5, -0.5)
    with pytest.raises(InvalidRequest) as seed:
        fit_request(ir, "invoke", "anthropic--claude-4.5-sonnet")
    assert seed.value.param == "seed"
    penalty = chat_request_to_ir({"messages": body["messages"], "presence_penalty": 0.5})
    with pytest.raises(InvalidRequest) as refused:
        fit_request(penalty, "converse", "anthropic--claude-4.5-sonnet")
    assert refused.value.param == "presence_penalty"
    defaults = chat_request_to_ir({"messages": body["messages"], "presence_penalty": 0, "frequency_penalty": 0})
    assert "_sampling" not in bedrock_invoke_body(fit_request(defaults, "invoke", "anthropic--claude-4.5-sonnet").ir, anthropic_beta=None)


@pytest.mark.parametrize("extra, param", [({"logprobs": 1}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs"),
                                          ({"seed": "1"}, "seed"), ({"presence_penalty": 3}, "presence_penalty")])
def test_item16_what_cannot_come_back_is_refused_not_dropped(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], **extra})
    assert refused.value.param == param
    assert "_sampling" not in chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "logprobs": False})


# ----------------------------------------------------------------- 17. allowed_tools, xhigh, none

def _fn(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


def test_item17_allowed_tools_restricts_what_is_offered() -> None:
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "b"}}]}}
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "tools": [_fn("a"), _fn("b"), _fn("c")], "tool_choice": choice})
    assert [t["name"] for t in ir["tools"]] == ["b"] and ir["tool_choice"] == {"type": "any"}
    auto = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "c"}}]}}
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "tools": [_fn("a"), _fn("b"), _fn("c")], "tool_choice": auto})
    assert [t["name"] for t in ir["tools"]] == ["a", "c"] and ir["tool_choice"] == {"type": "auto"}
    unknown = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "z"}}]}}
    with pytest.raises(InvalidRequest) as refused:
        chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "tools": [_fn("a")], "tool_choice": unknown})
    assert refused.value.param == "tool_choice.allowed_tools.tools[0]"


def test_item17_xhigh_and_none() -> None:
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "xhigh", "max_tokens": 1000})
    assert ir["thinking"] == {"type": "enabled", "budget_tokens": 32768} and ir["max_tokens"] > 32768
    none = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "none"})
    assert ir_request_to_gemini(none, model="gemini-2.5-flash")["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert ir_request_to_gemini(none, model="gemini-2.5-pro")["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}
    assert ir_request_to_gemini(none, model="gemini-3-pro-preview")["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "low"}
    assert bedrock_invoke_body(none, anthropic_beta=None)["thinking"] == {"type": "disabled"}


# ----------------------------------------------------------------- 15. typed enums through Gemini

from sapproxy.translate.tool_names import has_typed_enums, restore_enum_values  # noqa: E402

LEVEL_SCHEMA = {"type": "object", "properties": {
    "level": {"type": "integer", "enum": [1, 2, 3]},
    "ratio": {"const": 0.5},
    "flag": {"enum": [True, False]},
    "mode": {"type": "string", "enum": ["1", "fast"]},
    "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
    "either": {"anyOf": [{"type": "integer", "enum": [7]}, {"type": "string"}]},
}, "$defs": {"step": {"type": "object", "properties": {"n": {"enum": [10, 20]}}}}}


def test_item15_typed_enum_values_come_back_typed() -> None:
    assert has_typed_enums(LEVEL_SCHEMA) and not has_typed_enums({"properties": {"a": {"enum": ["x"]}}})
    answer = {"level": "2", "ratio": "0.5", "flag": "true", "mode": "1", "steps": [{"n": "20"}, {"n": "30"}],
              "either": "7", "extra": "2"}
    assert restore_enum_values(answer, LEVEL_SCHEMA) == {
        "level": 2, "ratio": 0.5, "flag": True, "mode": "1", "steps": [{"n": 20}, {"n": "30"}], "either": 7, "extra": "2"}


def test_item15_gemini_answers_are_restored_whole_and_streamed() -> None:
    ir = {"max_tokens": 10, "messages": [{"role": "user", "content": "go"}],
          "tools": [{"name": "set", "input_schema": LEVEL_SCHEMA}, {"name": "plain", "input_schema": {"type": "object"}}]}
    fitted = fit_request(ir, "gemini", "gemini-2.5-pro")
    sent = ir_request_to_gemini(fitted.ir)["tools"][0]["functionDeclarations"][0]["parameters"]
    assert sent["properties"]["level"]["enum"] == ["1", "2", "3"]  # what Gemini takes
    message = {"content": [{"type": "tool_use", "id": "t", "name": "set", "input": {"level": "3"}},
                           {"type": "tool_use", "id": "u", "name": "plain", "input": {"level": "3"}}]}
    assert [b["input"] for b in fitted.names.restore_message(message)["content"]] == [{"level": 3}, {"level": "3"}]
    restorer = fitted.names.restorer()
    restorer.feed({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "set", "input": {}}})
    (delta,) = restorer.feed({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"level": "1"}'}})
    assert json.loads(delta["delta"]["partial_json"]) == {"level": 1}
    # other upstreams take typed enums as they are: nothing to restore
    assert not fit_request(ir, "openai", "gpt-4.1").names.renamed


def test_item7_the_fitting_puts_the_models_ceiling_where_the_client_set_none() -> None:
    unset = chat_request_to_ir({"messages": [{"role": "user", "content": "hi"}]})
    fitted = fit_request(unset, "gemini", "gemini-2.5-pro", max_output_tokens=65536).ir
    assert fitted["max_tokens"] == 65536 and "_max_tokens_default" not in fitted
    assert fit_request(unset, "invoke", "x", max_output_tokens=None).ir["max_tokens"] == 4096
    mine = chat_request_to_ir({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50})
    assert fit_request(mine, "gemini", "gemini-2.5-pro", max_output_tokens=65536).ir["max_tokens"] == 50
    thinking = chat_request_to_ir({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "xhigh"})
    assert fit_request(thinking, "invoke", "m", max_output_tokens=64000).ir["max_tokens"] == 64000
    assert fit_request(thinking, "invoke", "m", max_output_tokens=8192).ir["max_tokens"] == 4096 + 32768


# ----------------------------------------------------------------- 10. Gemini thinking tokens

def test_item10_gemini_thinking_tokens_reach_both_dialects() -> None:
    from sapproxy.translate.wire.gemini import GeminiToAnthropicStream, gemini_response_to_ir
    from sapproxy.translate.client.openai_chat import ir_response_to_chat

    resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 40}}
    message = gemini_response_to_ir(resp, "m")
    assert message["usage"]["output_tokens"] == 42
    assert message["usage"]["output_tokens_details"] == {"thinking_tokens": 40}  # Anthropic clients
    chat = ir_response_to_chat(message, "m", created=1)
    assert chat["usage"]["completion_tokens_details"]["reasoning_tokens"] == 40  # OpenAI clients
    gemini = GeminiToAnthropicStream("m", message_id="msg_1")
    openai = AnthropicToOpenAIStream("m", completion_id="c", created=1, include_usage=True)
    chunks = [c for e in gemini.feed(resp) + gemini.finish() for c in openai.feed(e)]
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 40


# ----------------------------------------------------------------- 22. interleaved parallel tool calls from Azure

def _azure(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _call(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if name:
        call.update(id=f"call_{index}", type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def test_item22_interleaved_fragments_never_follow_their_blocks_stop() -> None:
    from sapproxy.translate.wire.openai_chat import OpenAIToAnthropicStream

    chunks = [_azure({"role": "assistant"}), _azure(_call(0, "", "a")), _azure(_call(1, "", "b")),
              _azure(_call(0, '{"x":')), _azure(_call(1, '{"y":')), _azure(_call(0, " 1}")), _azure(_call(1, " 2}")),
              _azure({}, "tool_calls"),
              {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}]
    stream = OpenAIToAnthropicStream("m", message_id="msg_1")
    events = [e for chunk in chunks for e in stream.feed(chunk)] + stream.finish()
    stopped: set[int] = set()
    open_index = None
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_start":
            assert open_index is None
            open_index = event["index"]
            names[event["index"]] = event["content_block"]["name"]
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index and event["index"] not in stopped, event
            arguments[event["index"]] = arguments.get(event["index"], "") + event["delta"]["partial_json"]
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index
            stopped.add(event["index"])
            open_index = None
    assert {names[i]: json.loads(a) for i, a in arguments.items()} == {"a": {"x": 1}, "b": {"y": 2}}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


# ----------------------------------------------------------------- 19. MALFORMED_FUNCTION_CALL

def test_item19_malformed_function_call_is_unusable_whole_and_an_error_streamed() -> None:
    from sapproxy.translate.errors import UnusableAnswer
    from sapproxy.translate.wire.gemini import GeminiToAnthropicStream, gemini_response_to_ir

    resp = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "Malformed function call: x"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 0}}
    with pytest.raises(UnusableAnswer) as unusable:
        gemini_response_to_ir(resp, "m")
    assert "MALFORMED_FUNCTION_CALL" in unusable.value.message
    stream = GeminiToAnthropicStream("m", message_id="msg_1")
    events = stream.feed(resp) + stream.finish()
    assert [e["type"] for e in events] == ["message_start", "error"]
    assert events[-1]["error"]["type"] == "api_error"


# ----------------------------------------------------------------- 9. Gemini signatures through OpenAI clients

SIG = "CiQBcsjafP8Q7Zr+/w3NnD5kY1xlx0AWyqbB3yT3m2dJ1C8oQ0E="


def _gemini_call() -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me look."},
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": SIG}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3}}


def _echo(call_id: str, *, thinking_blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    assistant: dict[str, Any] = {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]}
    if thinking_blocks is not None:
        assistant["thinking_blocks"] = thinking_blocks
    return {"model": "gemini-3-pro-preview", "messages": [
        {"role": "user", "content": "find x"}, assistant,
        {"role": "tool", "tool_call_id": call_id, "content": "found"}],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]}


def _model_parts(chat_body: dict[str, Any]) -> list[dict[str, Any]]:
    gemini = ir_request_to_gemini(chat_request_to_ir(chat_body), model="gemini-3-pro-preview")
    return next(c["parts"] for c in gemini["contents"] if c["role"] == "model")


def test_item9_the_signature_rides_in_the_call_id_and_goes_back_on_its_call() -> None:
    from sapproxy.translate.client.openai_chat import ir_response_to_chat
    from sapproxy.translate.wire.gemini import GeminiToAnthropicStream, gemini_response_to_ir

    chat = ir_response_to_chat(gemini_response_to_ir(_gemini_call(), "m"), "m", created=1)
    (call,) = chat["choices"][0]["message"]["tool_calls"]
    assert RULES["invoke"].accepts(call["id"][:128]) and "+" not in call["id"] and "/" not in call["id"]
    # a client that keeps only the id
    parts = _model_parts(_echo(call["id"]))
    assert parts == [{"text": "Let me look."}, {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": SIG}]
    # a client that also echoes thinking_blocks: still only on the call, not on the text before it
    blocks = chat["choices"][0]["message"]["thinking_blocks"]
    assert _model_parts(_echo(call["id"], thinking_blocks=blocks)) == parts
    # streamed: the same id
    gemini = GeminiToAnthropicStream("m", message_id="msg_1")
    openai = AnthropicToOpenAIStream("m", completion_id="c", created=1, include_usage=False)
    chunks = [c for e in gemini.feed(_gemini_call()) + gemini.finish() for c in openai.feed(e)]
    ids = [tc["id"] for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or () if tc.get("id")]
    assert len(ids) == 1 and _model_parts(_echo(ids[0])) == parts


def test_item9_ids_without_a_signature_are_untouched() -> None:
    from sapproxy.translate.wire.gemini.signatures import signed_tool_use_id, tool_use_id_signature

    assert signed_tool_use_id("toolu_1", None) == "toolu_1"
    assert signed_tool_use_id("toolu_1", "not base64!") == "toolu_1"
    assert tool_use_id_signature("call_abc") is None and tool_use_id_signature(None) is None
    assert tool_use_id_signature(signed_tool_use_id("toolu_1", SIG)) == SIG


# ----------------------------------------------------------------- 20. search results, tool result images to Gemini 3

def test_item20_search_results_become_text_off_claude() -> None:
    result = {"type": "search_result", "source": "https://example.com/a", "title": "A",
              "content": [{"type": "text", "text": "alpha"}]}
    ir = {"max_tokens": 5, "messages": [
        {"role": "user", "content": [result, {"type": "text", "text": "sum up"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "s", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [result]}]}],
        "tools": [{"name": "s", "input_schema": {"type": "object"}}]}
    text = {"type": "text", "text": "Search result: A — https://example.com/a\nalpha"}
    for upstream in ("openai", "gemini", "converse"):
        fitted = fit_request(ir, upstream, "m").ir
        assert fitted["messages"][0]["content"][0] == text
        assert fitted["messages"][2]["content"][0]["content"] == [text]
    assert ir_request_to_chat(fit_request(ir, "openai", "m").ir, reasoning_model=False)["messages"][0]["content"].startswith("Search result: A")
    assert fit_request(ir, "invoke", "m").ir["messages"][0]["content"][0] == result  # Claude reads them as they are


def test_item20_tool_result_images_go_inside_the_function_response_for_gemini_3() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
    ir = {"max_tokens": 5, "messages": [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "done"}, image]}]}]}
    three = ir_request_to_gemini(ir, model="gemini-3-pro-preview")["contents"][2]["parts"]
    assert three == [{"functionResponse": {"name": "shot", "response": {"content": "done"},
                                           "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}]
    older = ir_request_to_gemini(ir, model="gemini-2.5-pro")["contents"][2]["parts"]
    assert older == [{"functionResponse": {"name": "shot", "response": {"content": "done"}}},
                     {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]


# ----------------------------------------------------------------- 18. message names

def test_item18_a_messages_name_says_who_speaks() -> None:
    ir = chat_request_to_ir({"messages": [
        {"role": "user", "name": "alice", "content": "hi"},
        {"role": "assistant", "name": "bot", "content": [{"type": "text", "text": "hello"}]},
        {"role": "user", "name": " ", "content": "plain"}]})
    assert [b["text"] for m in ir["messages"] for b in m["content"]] == ["alice: hi", "bot: hello", "plain"]


# ----------------------------------------------------------------- 21. interleaved thinking through OpenAI clients

INTERLEAVED = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "tool_use",
               "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1},
               "content": [{"type": "thinking", "thinking": "first", "signature": "S1"},
                           {"type": "tool_use", "id": "toolu_a", "name": "a", "input": {}},
                           {"type": "thinking", "thinking": "second", "signature": "S2"},
                           {"type": "redacted_thinking", "data": "R"},
                           {"type": "tool_use", "id": "toolu_b", "name": "b", "input": {"x": 1}}]}


def _echoed(message: dict[str, Any]) -> list[tuple[str, str]]:
    body = {"messages": [{"role": "user", "content": "go"}, message,
                         {"role": "tool", "tool_call_id": "toolu_a", "content": "A"},
                         {"role": "tool", "tool_call_id": "toolu_b", "content": "B"}], "reasoning_effort": "low"}
    assistant = chat_request_to_ir(body)["messages"][1]["content"]
    assert all("_after" not in b for b in assistant)
    return [(b["type"], b.get("signature") or b.get("id") or b.get("data")) for b in assistant]


ORDER = [("thinking", "S1"), ("tool_use", "toolu_a"), ("thinking", "S2"), ("redacted_thinking", "R"), ("tool_use", "toolu_b")]


def test_item21_interleaved_thinking_comes_back_in_its_order_whole_and_streamed() -> None:
    from sapproxy.translate.client.openai_chat import ir_response_to_chat

    message = ir_response_to_chat(INTERLEAVED, "m", created=1)["choices"][0]["message"]
    assert [b.get("after") for b in message["thinking_blocks"]] == [None, "toolu_a", "toolu_a"]
    assert _echoed({k: v for k, v in message.items() if k in ("role", "content", "tool_calls", "thinking_blocks")}) == ORDER
    # streamed: the accumulated thinking_blocks carry the same marks
    stream = AnthropicToOpenAIStream("m", completion_id="c", created=1, include_usage=False)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {"usage": {"input_tokens": 1, "output_tokens": 0}}}]
    for i, block in enumerate(INTERLEAVED["content"]):
        start = {**block, "input": {}} if block["type"] == "tool_use" else \
            ({"type": "thinking", "thinking": "", "signature": ""} if block["type"] == "thinking" else block)
        events.append({"type": "content_block_start", "index": i, "content_block": start})
        if block["type"] == "thinking":
            events.append({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
            events.append({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": block["signature"]}})
        events.append({"type": "content_block_stop", "index": i})
    events += [{"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}, {"type": "message_stop"}]
    chunks = [c for e in events for c in stream.feed(e)]
    blocks = sorted((b for c in chunks for ch in c["choices"] for b in ch["delta"].get("thinking_blocks") or ()),
                    key=lambda b: b["index"])
    calls = [{"id": tc["id"], "type": "function", "function": {"name": tc["function"]["name"], "arguments": "{}"}}
             for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or () if tc.get("id")]
    echoed = {"role": "assistant", "content": None, "tool_calls": calls,
              "thinking_blocks": [{k: v for k, v in b.items() if k != "index"} for b in blocks]}
    assert _echoed(echoed) == ORDER


def test_item21_unmarked_thinking_blocks_still_lead() -> None:
    message = {"role": "assistant", "content": None,
               "tool_calls": [{"id": "toolu_a", "type": "function", "function": {"name": "a", "arguments": "{}"}}],
               "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "S"}]}
    assert _echoed(message)[:2] == [("thinking", "S"), ("tool_use", "toolu_a")]


# ----------------------------------------------------------------- 18. input tokens in message_start

def test_item18_message_start_gets_an_estimate_where_the_upstream_says_nothing_yet() -> None:
    from sapproxy.translate.prompt_estimate import InputTokensAtStart, estimate_input_tokens

    request = {"max_tokens": 5, "system": "s" * 400, "messages": [{"role": "user", "content": "x" * 4000}]}
    estimate = estimate_input_tokens(request)
    assert 1000 < estimate < 1200
    start = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 0, "output_tokens": 0}}}
    fixer = InputTokensAtStart(estimate)
    assert fixer.feed(start)[0]["message"]["usage"] == {"input_tokens": estimate, "output_tokens": 0}
    assert fixer.feed(start) == [start]  # the first message_start only
    known = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 42, "output_tokens": 0}}}
    assert InputTokensAtStart(estimate).feed(known) == [known]


# ----------------------------------------------------------------- 12. what Bedrock takes of the Anthropic body

def test_item12_model_specific_betas_pass_with_their_fields() -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "output_config": {"effort": "medium", "format": {"type": "json_schema", "schema": {}}},
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "input_examples": [{}]}]}
    header = "context-management-2025-06-27,effort-2025-11-24,tool-examples-2025-10-29,claude-code-20250219"
    opus = bedrock_invoke_body(body, anthropic_beta=header, model="anthropic--claude-4.5-opus")
    assert opus["anthropic_beta"] == ["context-management-2025-06-27", "effort-2025-11-24", "tool-examples-2025-10-29"]
    assert opus["context_management"] == body["context_management"]
    fmt = {"type": "json_schema", "schema": {}}
    assert opus["output_config"] == {"effort": "medium", "format": fmt}  # item 11: Opus 4.5 enforces formats
    assert opus["tools"][0]["input_examples"] == [{}]
    sonnet = bedrock_invoke_body(body, anthropic_beta=header, model="anthropic--claude-4.5-sonnet")
    assert sonnet["anthropic_beta"] == ["context-management-2025-06-27"] and "context_management" in sonnet
    assert sonnet["output_config"] == {"format": fmt} and "input_examples" not in sonnet["tools"][0]
    old = bedrock_invoke_body(body, anthropic_beta=header, model="anthropic--claude-3.7-sonnet")
    assert "anthropic_beta" not in old and "context_management" not in old and "output_config" not in old
    unbeta = bedrock_invoke_body(body, anthropic_beta=None, model="anthropic--claude-4.5-opus")
    assert not {"context_management", "anthropic_beta"} & set(unbeta) and unbeta["output_config"] == {"format": fmt}


# ----------------------------------------------------------------- 21. foreign signatures

def test_item21_each_family_gets_only_its_own_signatures() -> None:
    history = {"max_tokens": 10, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "claude's", "signature": "EqQBCkgIARABGAIiQL"},
            {"type": "text", "text": "from claude"}]},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": "gemini:CiQBjz1rX"},
            {"type": "text", "text": "from gemini"}]},
        {"role": "user", "content": "q3"}]}
    gemini = ir_request_to_gemini(history, model="gemini-3-pro-preview")
    signed = [p.get("thoughtSignature") for c in gemini["contents"] for p in c["parts"] if p.get("thoughtSignature")]
    assert signed == ["CiQBjz1rX"]  # Claude's is not Gemini's business; Gemini's unmarked, as it came
    claude = fit_request(history, "invoke", "anthropic--claude-4.5-sonnet").ir
    thinking = [b["signature"] for m in claude["messages"] if isinstance(m["content"], list)
                for b in m["content"] if b["type"] == "thinking"]
    assert thinking == ["EqQBCkgIARABGAIiQL"]  # byte for byte, and no Gemini signature for Claude to refuse


def test_every_registered_wire_format_has_fitting_rules() -> None:
    from sapproxy.registry import WIRE_FORMATS

    assert {wire.fit_kind for wire in WIRE_FORMATS.values()} <= set(RULES)
    # Anthropic's own API runs server tools: nothing is dropped there
    ir = _ir_with(TYPED)
    assert fit_request(ir, "anthropic", "claude-sonnet-4-5").ir["tools"] == TYPED
