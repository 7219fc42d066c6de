"""
The OpenAI Responses API in front of every family: the client converters
(sapproxy.translate.client.openai_responses), the native GPT wire format
(sapproxy.translate.wire.openai_responses) and the tool/reasoning mapping they share.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, fixture_path
from responses_check import check_stream, gapless, recorded_streams
from sapproxy.translate.client.openai_responses import (
    IRToResponsesStream, ResponseFrame, client_view, ir_message_to_response, responses_request_to_ir,
)
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.responses_items import map_tools, pack_reasoning, unpack_reasoning
from sapproxy.translate.wire.gemini import GeminiToAnthropicStream, ir_request_to_gemini
from sapproxy.translate.wire.openai_responses import ResponsesPassthrough, gpt_request, native_response
from test_tr_openai_support import anthropic_events

RECORDED = sorted((FIXTURES / "openai-responses").glob("*.chunks.txt"))
ANTHROPIC = sorted((FIXTURES / "anthropic-chunks").glob("*.chunks.txt")) + sorted((FIXTURES / "anthropic").glob("*.txt"))
GEMINI = sorted((FIXTURES / "gemini").glob("*.chunks.txt"))

CODEX_TOOLS = [
    {"type": "function", "name": "shell", "description": "Runs a shell command",
     "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                    "required": ["command"]}, "strict": False},
    {"type": "custom", "name": "apply_patch", "description": "Edit files",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "agents",
     "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]},
    {"type": "local_shell"},
    {"type": "web_search", "external_web_access": False},
    {"type": "image_generation"},
]


def frame(body: dict[str, Any] | None = None, tools: Any = None, include: bool = False) -> ResponseFrame:
    body = dict(body or {"model": "m", "input": "hi"})
    if include:
        body["include"] = ["reasoning.encrypted_content"]
    return ResponseFrame.for_request(body, "client-model", tools or map_tools(body.get("tools")), created_at=1700000000)


def run(translator: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        out.extend(json.loads(json.dumps(e)) for e in translator.feed(event))
    out.extend(json.loads(json.dumps(e)) for e in translator.finish())
    return out


# ------------------------------------------------------------------------------------ recorded streams


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_the_checker_accepts_every_recorded_stream(path: Any) -> None:
    streams = recorded_streams(path)
    assert streams
    for stream in streams:
        check_stream(stream, sequence=all("sequence_number" in e for e in stream), recorded=True,
                     complete=gapless(stream))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_native_passthrough_keeps_recorded_streams_valid(path: Any) -> None:
    for stream in recorded_streams(path):
        f = frame()
        passthrough = ResponsesPassthrough(f)
        complete = gapless(stream)
        types = [e["type"] for e in stream]
        out = run(passthrough, stream)
        final = check_stream(out, recorded=True, complete=complete)
        assert all(e["response"]["id"] == f.response_id and e["response"]["model"] == "client-model"
                   for e in out if "response" in e)
        assert [e["type"] for e in out] == types
        if final["status"] == "completed":
            upstream_usage = stream[-1]["response"]["usage"]
            assert passthrough.usage is not None
            assert passthrough.usage.prompt_tokens == upstream_usage["input_tokens"]
            assert passthrough.usage.completion_tokens == upstream_usage["output_tokens"]
            assert final["usage"]["input_tokens_details"]["cached_tokens"] == upstream_usage["input_tokens_details"]["cached_tokens"]
            assert final["usage"]["output_tokens_details"] == upstream_usage["output_tokens_details"]
            assert final["usage"]["total_tokens"] == upstream_usage["total_tokens"]
        # encrypted content was not asked for by this client: never sent, but kept for the store
        assert "encrypted_content" not in json.dumps(out)
        if "encrypted_content" in json.dumps(stream):
            assert passthrough.final is not None and "encrypted_content" in json.dumps(passthrough.final)


def test_native_passthrough_gives_encrypted_content_when_asked() -> None:
    stream = recorded_streams(fixture_path("openai-responses/openai-reasoning-encrypted-content.1.chunks.txt"))[0]
    out = run(ResponsesPassthrough(frame(include=True)), stream)
    upstream = [e["item"]["encrypted_content"] for e in stream if e["type"] == "response.output_item.done"
                and e["item"]["type"] == "reasoning"]
    mine = [e["item"]["encrypted_content"] for e in out if e["type"] == "response.output_item.done"
            and e["item"]["type"] == "reasoning"]
    assert mine == upstream and mine


def test_native_passthrough_maps_a_custom_tool_call_back() -> None:
    # The recorded calculator call, as if "calculator" were the client's custom tool sent as a function.
    stream = recorded_streams(fixture_path("openai-responses/openai-reasoning-encrypted-content.1.chunks.txt"))[0]
    tools = map_tools([{"type": "custom", "name": "calculator"}])
    out = run(ResponsesPassthrough(frame(tools=tools)), stream)
    final = check_stream(out, recorded=True)
    calls = [i for i in final["output"] if i["type"] == "custom_tool_call"]
    assert calls and all(c["name"] == "calculator" and c["id"].startswith("ctc_") for c in calls)
    assert calls[0]["input"] == '{"a":12,"b":7,"op":"add"}'  # not {"input": ...}: the arguments as written
    assert not any(e["type"].startswith("response.function_call_arguments") for e in out)
    assert [e["type"] for e in out].count("response.custom_tool_call_input.done") == len(calls)


def test_native_passthrough_maps_a_namespaced_call_back() -> None:
    tools = map_tools([{"type": "namespace", "name": "calc_ns", "tools": [{"type": "function", "name": "calculator"}]}])
    stream = recorded_streams(fixture_path("openai-responses/openai-reasoning-encrypted-content.1.chunks.txt"))[0]
    renamed = json.loads(json.dumps(stream).replace('"name": "calculator"', '"name": "calc_ns__calculator"'))
    out = run(ResponsesPassthrough(frame(tools=tools)), renamed)
    final = check_stream(out, recorded=True)
    calls = [i for i in final["output"] if i["type"] == "function_call"]
    assert calls and all(c["name"] == "calculator" and c["namespace"] == "calc_ns" for c in calls)
    assert all(e["name"] == "calculator" for e in out if e["type"] == "response.function_call_arguments.done")


def test_native_passthrough_ends_a_cut_stream_with_failed() -> None:
    stream = recorded_streams(fixture_path("openai-responses/openai-phase.1.chunks.txt"))[0]
    out = run(ResponsesPassthrough(frame()), stream[:-3])
    final = check_stream(out, recorded=True, complete=False)
    assert out[-1]["type"] == "response.failed" and final["error"]["code"] == "server_error"


def test_native_whole_response_maps_local_shell() -> None:
    tools = map_tools([{"type": "local_shell"}])
    upstream = {"id": "resp_up", "status": "completed", "output": [
        {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "local_shell",
         "arguments": json.dumps({"command": ["ls", "-a"], "workdir": "/tmp", "timeout_ms": 1000})}],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}
    resp = native_response(upstream, frame(tools=tools))
    assert resp["output"] == [{"id": "lsh_1", "type": "local_shell_call", "status": "completed", "call_id": "call_1",
                               "action": {"type": "exec", "command": ["ls", "-a"], "env": {}, "timeout_ms": 1000,
                                          "working_directory": "/tmp"}}]
    assert resp["model"] == "client-model" and resp["id"].startswith("resp_") and resp["id"] != "resp_up"


# --------------------------------------------------------------------------- IR streams -> Responses


@pytest.mark.parametrize("path", ANTHROPIC, ids=lambda p: p.name)
def test_claude_streams_become_valid_responses_streams(path: Any) -> None:
    events = anthropic_events(path)
    translator = IRToResponsesStream(frame(include=True))
    out = run(translator, events)
    final = check_stream(out)
    if any(e.get("type") == "message_stop" for e in events):
        assert final["status"] in ("completed", "incomplete")
    texts = "".join(e["delta"]["text"] for e in events if e.get("type") == "content_block_delta"
                    and e["delta"].get("type") == "text_delta")
    got = "".join(p["text"] for i in final["output"] if i["type"] == "message" for p in i["content"])
    assert got == texts
    signatures = [e["delta"]["signature"] for e in events if e.get("type") == "content_block_delta"
                  and e["delta"].get("type") == "signature_delta"]
    packed = [b for i in final["output"] if i["type"] == "reasoning" for b in unpack_reasoning(i["encrypted_content"]) or ()]
    assert [b["signature"] for b in packed if b["type"] == "thinking"] == signatures
    assert translator.final == final


def test_incomplete_when_max_tokens_cut_the_answer() -> None:
    out = run(IRToResponsesStream(frame()), anthropic_events(fixture_path("anthropic/incomplete_partial_json_response.txt")))
    final = check_stream(out)
    assert out[-1]["type"] == "response.incomplete"
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_stream_cut_short_fails_and_never_completes() -> None:
    events = anthropic_events(fixture_path("anthropic/tool_use_response.txt"))
    out = run(IRToResponsesStream(frame()), events[:6])
    check_stream(out)
    assert [e["type"] for e in out].count("response.completed") == 0
    assert out[-1]["type"] == "response.failed"


def test_an_upstream_error_event_fails_the_response() -> None:
    events = anthropic_events(fixture_path("anthropic/basic_response.txt"))[:3]
    events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    out = run(IRToResponsesStream(frame()), events)
    final = check_stream(out)
    assert final["error"] == {"code": "server_error", "message": "Overloaded"}


def test_relay_failure_is_a_failed_event_after_what_was_sent() -> None:
    translator = IRToResponsesStream(frame())
    events = anthropic_events(fixture_path("anthropic/basic_response.txt"))[:4]
    out = [e for ev in events for e in translator.feed(ev)]
    out += translator.fail("timeout", "the upstream sent nothing for 300 seconds")
    out = json.loads(json.dumps(out))
    final = check_stream(out)
    assert final["error"] == {"code": "server_error", "message": "the upstream sent nothing for 300 seconds"}
    assert translator.finish() == []


def test_usage_in_the_responses_shape() -> None:
    out = run(IRToResponsesStream(frame()), anthropic_events(fixture_path("anthropic-chunks/anthropic-text.chunks.txt")))
    usage = check_stream(out)["usage"]
    assert set(usage) == {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details",
                          "total_tokens"}
    assert usage["output_tokens"] > 0 and usage["input_tokens"] > 0


def test_codex_tool_calls_come_back_in_their_own_shapes() -> None:
    tools = map_tools(CODEX_TOOLS)
    blocks = [("apply_patch", {"input": "*** Begin Patch\n*** End Patch"}), ("local_shell", {"command": ["ls"]}),
              ("multi_agent_v1__spawn_agent", {"task": "x"}), ("shell", {"command": ["pwd"]})]
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                     "content": [], "model": "c", "usage": {"input_tokens": 5, "output_tokens": 0}}}]
    for n, (name, args) in enumerate(blocks):
        text = json.dumps(args)
        events += [{"type": "content_block_start", "index": n, "content_block": {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": {}}},
                   {"type": "content_block_delta", "index": n, "delta": {"type": "input_json_delta", "partial_json": text[:5]}},
                   {"type": "content_block_delta", "index": n, "delta": {"type": "input_json_delta", "partial_json": text[5:]}},
                   {"type": "content_block_stop", "index": n}]
    events += [{"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}, {"type": "message_stop"}]
    out = run(IRToResponsesStream(frame(tools=tools)), events)
    final = check_stream(out)
    kinds = [(i["type"], i.get("name"), i.get("namespace")) for i in final["output"]]
    assert kinds == [("custom_tool_call", "apply_patch", None), ("local_shell_call", None, None),
                     ("function_call", "spawn_agent", "multi_agent_v1"), ("function_call", "shell", None)]
    assert final["output"][0]["input"] == "*** Begin Patch\n*** End Patch"
    assert final["output"][1]["action"]["command"] == ["ls"]


@pytest.mark.parametrize("path", GEMINI, ids=lambda p: p.name)
def test_gemini_streams_and_their_thought_signatures(path: Any) -> None:
    chunks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    gemini = GeminiToAnthropicStream("gemini-2.5-pro", message_id="msg_x")
    ir_events = [e for c in chunks for e in gemini.feed(c)] + gemini.finish()
    out = run(IRToResponsesStream(frame(include=True)), ir_events)
    final = check_stream(out)
    sent = [p["thoughtSignature"] for c in chunks for cand in c.get("candidates") or ()
            for p in (cand.get("content") or {}).get("parts") or () if p.get("thoughtSignature")]
    if final["status"] == "failed":
        return
    # The next request carries the output back: the signatures reach Gemini byte for byte.
    follow = {"model": "g", "input": [{"role": "user", "content": "q"}] + final["output"] +
              [{"type": "function_call_output", "call_id": i["call_id"], "output": "r"}
               for i in final["output"] if i["type"] == "function_call"] + [{"role": "user", "content": "more"}],
              "tools": [{"type": "function", "name": i["name"]} for i in final["output"] if i["type"] == "function_call"]}
    gemini_body = ir_request_to_gemini(responses_request_to_ir(follow), model="gemini-3-pro-preview")
    back = [p["thoughtSignature"] for c in gemini_body["contents"] for p in c["parts"] if p.get("thoughtSignature")]
    assert back == sent


# ----------------------------------------------------------------------------------------- requests


def test_codex_tools_as_functions_and_the_dropped_ones_named() -> None:
    tools = map_tools(CODEX_TOOLS, {"type": "web_search"})
    assert [f["name"] for f in tools.functions] == ["shell", "apply_patch", "multi_agent_v1__spawn_agent", "local_shell"]
    assert all(f["type"] == "function" for f in tools.functions)
    assert tools.dropped == ("web_search", "image_generation")
    assert tools.tool_choice == "auto"
    assert "lark grammar" in tools.functions[1]["parameters"]["properties"]["input"]["description"]


@pytest.mark.parametrize("choice, expected", [
    ("required", "required"), ("none", "none"),
    ({"type": "function", "name": "shell"}, {"type": "function", "name": "shell"}),
    ({"type": "custom", "name": "apply_patch"}, {"type": "function", "name": "apply_patch"}),
    ({"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"},
     {"type": "function", "name": "multi_agent_v1__spawn_agent"}),
    ({"type": "function", "name": "gone"}, "auto"),
    ({"type": "image_generation"}, "auto"),
    ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "shell"}, {"type": "web_search"}]},
     {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "shell"}]}),
])
def test_tool_choice_fix_up(choice: Any, expected: Any) -> None:
    assert map_tools(CODEX_TOOLS, choice).tool_choice == expected


def test_required_with_every_tool_dropped_asks_for_none() -> None:
    tools = map_tools([{"type": "web_search"}], "required")
    assert tools.functions == [] and tools.tool_choice is None
    ir = responses_request_to_ir({"model": "c", "input": "hi", "tools": [{"type": "web_search"}], "tool_choice": "required"})
    assert "tools" not in ir and "tool_choice" not in ir


def test_codex_history_outputs_follow_their_calls() -> None:
    body = {"model": "claude", "instructions": "You are Codex.", "tools": CODEX_TOOLS, "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<env>"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "done"}]},
        {"type": "local_shell_call", "call_id": "c3", "status": "completed",
         "action": {"type": "exec", "command": ["cat", "a.txt"], "env": {}}},
        {"type": "local_shell_call_output", "id": "c3", "output": "hello"},
        {"type": "function_call", "call_id": "c4", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
        {"type": "function_call_output", "call_id": "c4", "output": "spawned"},
        {"type": "function_call_output", "call_id": "orphan", "output": "lost"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "All done."}]},
        {"type": "message", "role": "user", "content": "thanks"},
    ]}
    ir = responses_request_to_ir(body)
    assert [b["text"] for b in ir["system"]] == ["You are Codex.", "<permissions>", "<env>"]
    roles = [m["role"] for m in ir["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:])), roles
    calls = [(b["id"], b["name"], b["input"]) for m in ir["messages"] for b in m["content"] if b["type"] == "tool_use"]
    assert calls == [("c1", "shell", {"command": ["ls"]}), ("c2", "apply_patch", {"input": "*** Begin Patch"}),
                     ("c3", "local_shell", {"command": ["cat", "a.txt"]}), ("c4", "multi_agent_v1__spawn_agent", {})]
    # Each assistant turn with calls is followed by a user turn that starts with their results.
    for n, message in enumerate(ir["messages"]):
        made = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        if made:
            following = ir["messages"][n + 1]["content"]
            assert [b["tool_use_id"] for b in following[: len(made)]] == made
    results = {b["tool_use_id"]: b.get("content") for m in ir["messages"] for b in m["content"] if b["type"] == "tool_result"}
    assert results == {"c1": "a.txt", "c2": [{"type": "text", "text": "done"}], "c3": "hello", "c4": "spawned"}
    texts = [b["text"] for m in ir["messages"] for b in m["content"] if b["type"] == "text"]
    assert "Output of tool call orphan:\nlost" in texts and "All done." in texts and texts[-1] == "thanks"
    assert [t["name"] for t in ir["tools"]] == ["shell", "apply_patch", "multi_agent_v1__spawn_agent", "local_shell"]


def test_a_call_without_output_gets_one() -> None:
    ir = responses_request_to_ir({"model": "c", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"role": "user", "content": "never mind"}], "tools": [{"type": "function", "name": "f"}]})
    assert ir["messages"][2]["content"][0]["type"] == "tool_result"
    assert ir["messages"][2]["content"][0]["tool_use_id"] == "c1"


def test_parameters() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    ir = responses_request_to_ir({
        "model": "c", "input": "hi", "max_output_tokens": 3000, "temperature": 0.3, "top_p": 0.9,
        "reasoning": {"effort": "medium", "summary": "auto"}, "parallel_tool_calls": False,
        "tools": [{"type": "function", "name": "f", "strict": True, "parameters": schema}],
        "text": {"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}, "verbosity": "low"},
        "user": "u1", "store": False, "metadata": {"k": "v"}, "service_tier": "flex", "prompt_cache_key": "k",
        "include": ["reasoning.encrypted_content"], "stream": True})
    assert ir["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert ir["max_tokens"] == 3000 + 8192
    assert "temperature" not in ir  # Claude wants the default with thinking on
    assert ir["_response_format"] == {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    assert ir["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert ir["metadata"] == {"user_id": "u1"} and ir["stream"] is True
    plain = responses_request_to_ir({"model": "c", "input": "hi", "temperature": 0.3, "reasoning": {"effort": "none"}})
    # "none" is said out loud (issue 14, item 17): Gemini thinks unless told not to; Claude takes it as is
    assert plain["temperature"] == 0.3 and plain["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize("body, param", [
    ({"model": "c"}, "input"),
    ({"model": "c", "input": 5}, "input"),
    ({"model": "c", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0].file_id"),
    ({"model": "c", "input": [{"type": "bogus"}]}, "input[0].type"),
    ({"model": "c", "input": "x", "reasoning": {"effort": "max"}}, "reasoning.effort"),
    ({"model": "c", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "c", "input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
    ({"model": "c", "input": [{"role": "developer", "content": "only"}]}, "input"),
    ({"model": "c", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
    ({"model": "c", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].id"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        responses_request_to_ir(body)
    assert e.value.param == param


def test_images_and_files() -> None:
    ir = responses_request_to_ir({"model": "c", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "see"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}]}]})
    content = ir["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
    assert content[2]["source"] == {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}


def test_claude_reasoning_round_trips_byte_exact() -> None:
    events = anthropic_events(fixture_path("anthropic-chunks/anthropic-clear-thinking.1.chunks.txt"))
    out = run(IRToResponsesStream(frame(include=True)), events)
    final = check_stream(out)
    reasoning = [i for i in final["output"] if i["type"] == "reasoning"]
    signature = "".join(e["delta"]["signature"] for e in events if e.get("delta", {}).get("type") == "signature_delta")
    thinking = "".join(e["delta"]["thinking"] for e in events if e.get("delta", {}).get("type") == "thinking_delta")
    follow = responses_request_to_ir({"model": "c", "reasoning": {"effort": "low"}, "input": [
        {"role": "user", "content": "q"}, *final["output"], {"role": "user", "content": "and?"}]})
    assistant = follow["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": thinking, "signature": signature}
    assert reasoning[0]["summary"] == [{"type": "summary_text", "text": thinking}]


def test_reasoning_that_is_not_ours_is_dropped_for_claude_and_kept_for_gpt() -> None:
    gpt_item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-openai"}
    body = {"model": "c", "input": [{"role": "user", "content": "q"}, gpt_item,
                                    {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
                                    {"role": "user", "content": "q2"}]}
    ir = responses_request_to_ir(body)
    assert ir["messages"][1]["content"] == [{"type": "text", "text": "a"}]
    upstream = gpt_request(body, map_tools(None), model="gpt-5", reasoning_model=True)
    assert gpt_item in upstream["input"]
    ours = {"type": "reasoning", "id": "rs_2", "summary": [],
            "encrypted_content": pack_reasoning([{"type": "thinking", "thinking": "t", "signature": "s"}])}
    upstream = gpt_request(dict(body, input=[ours, {"role": "user", "content": "q"}]), map_tools(None), model="gpt-5",
                           reasoning_model=True)
    assert upstream["input"] == [{"role": "user", "content": "q"}]


def test_gpt_request_sends_functions_only() -> None:
    body = {"model": "gpt-5-codex", "instructions": "i", "stream": True, "store": False, "tools": CODEX_TOOLS,
            "tool_choice": "auto", "parallel_tool_calls": False, "previous_response_id": "resp_x",
            "include": ["reasoning.encrypted_content"], "service_tier": "auto", "prompt_cache_key": "k",
            "reasoning": {"effort": "high", "summary": "auto"}, "text": {"verbosity": "low"},
            "input": [{"role": "user", "content": "go"},
                      {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "P", "id": "ctc_1"},
                      {"type": "custom_tool_call_output", "call_id": "c2", "output": "ok"},
                      {"type": "local_shell_call", "call_id": "c3", "action": {"type": "exec", "command": ["ls"]}},
                      {"type": "local_shell_call_output", "id": "c3", "output": "x"},
                      {"type": "web_search_call", "id": "ws"},
                      {"type": "function_call", "call_id": "c4", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c4", "output": "ok"}]}
    up = gpt_request(body, map_tools(body["tools"], body["tool_choice"]), model="gpt-5", reasoning_model=True)
    assert {t["type"] for t in up["tools"]} == {"function"}
    assert up["store"] is False and "previous_response_id" not in up and "service_tier" not in up
    assert up["include"] == ["reasoning.encrypted_content"] and up["model"] == "gpt-5"
    assert up["input"] == [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c2", "name": "apply_patch", "arguments": '{"input": "P"}'},
        {"type": "function_call_output", "call_id": "c2", "output": "ok"},
        {"type": "function_call", "call_id": "c3", "name": "local_shell", "arguments": '{"command": ["ls"]}'},
        {"type": "function_call_output", "call_id": "c3", "output": "x"},
        {"type": "function_call", "call_id": "c4", "name": "multi_agent_v1__spawn_agent", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c4", "output": "ok"},
    ]
    assert up["reasoning"] == {"effort": "high", "summary": "auto"} and up["text"] == {"verbosity": "low"}


def test_whole_ir_message_to_response() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "stop_reason": "tool_use",
               "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                           {"type": "text", "text": "Let me look."},
                           {"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {"input": "PATCH"}}],
               "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}}
    f = frame(tools=map_tools(CODEX_TOOLS))
    resp = ir_message_to_response(message, f)
    from openai.types.responses import Response
    Response.model_validate(resp)
    assert [i["type"] for i in resp["output"]] == ["reasoning", "message", "custom_tool_call"]
    assert resp["output"][2]["input"] == "PATCH" and resp["output"][2]["call_id"] == "toolu_1"
    assert resp["usage"] == {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0}, "output_tokens": 5,
                             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17}
    assert "encrypted_content" in resp["output"][0]
    assert "encrypted_content" not in client_view(resp, f)["output"][0]
    assert unpack_reasoning(resp["output"][0]["encrypted_content"]) == [{"type": "thinking", "thinking": "hmm", "signature": "sig=="}]
    cut = ir_message_to_response(dict(message, stop_reason="max_tokens"), f)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}


# ------------------------------------------------------------------------------------------ properties

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def ir_stream(draw: Any) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """An IR stream of random blocks, each delivered in random pieces, and what its blocks hold."""
    blocks = draw(st.lists(st.sampled_from(["text", "thinking", "redacted", "tool"]), min_size=0, max_size=5))
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                                     "content": [], "model": "c", "usage": {"input_tokens": 3, "output_tokens": 0}}}]
    expected: list[tuple[str, Any]] = []
    for n, kind in enumerate(blocks):
        if kind == "text":
            pieces = draw(st.lists(_text, min_size=1, max_size=4))
            events.append({"type": "content_block_start", "index": n, "content_block": {"type": "text", "text": ""}})
            events += [{"type": "content_block_delta", "index": n, "delta": {"type": "text_delta", "text": p}} for p in pieces]
            expected.append(("message", "".join(pieces)))
        elif kind == "thinking":
            pieces = draw(st.lists(_text, min_size=0, max_size=3))
            sig = draw(st.text(alphabet="abcXYZ019+/=", min_size=1, max_size=30))
            events.append({"type": "content_block_start", "index": n, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            events += [{"type": "content_block_delta", "index": n, "delta": {"type": "thinking_delta", "thinking": p}} for p in pieces]
            events.append({"type": "content_block_delta", "index": n, "delta": {"type": "signature_delta", "signature": sig}})
            expected.append(("reasoning", [{"type": "thinking", "thinking": "".join(pieces), "signature": sig}]))
        elif kind == "redacted":
            data = draw(st.text(alphabet="abc019+/=", min_size=1, max_size=20))
            events.append({"type": "content_block_start", "index": n, "content_block": {"type": "redacted_thinking", "data": data}})
            expected.append(("reasoning", [{"type": "redacted_thinking", "data": data}]))
        else:
            args = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), _text, max_size=3))
            text = json.dumps(args)
            cut = draw(st.integers(0, len(text)))
            events.append({"type": "content_block_start", "index": n, "content_block": {"type": "tool_use", "id": f"t{n}", "name": "f", "input": {}}})
            events += [{"type": "content_block_delta", "index": n, "delta": {"type": "input_json_delta", "partial_json": p}}
                       for p in (text[:cut], text[cut:]) if p]
            expected.append(("function_call", args))
        events.append({"type": "content_block_stop", "index": n})
    stop = draw(st.sampled_from(["end_turn", "max_tokens", "tool_use"]))
    events += [{"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 7}}, {"type": "message_stop"}]
    return events, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ir_stream())
def test_property_every_ir_stream_is_a_valid_responses_stream(case: Any) -> None:
    events, expected = case
    out = run(IRToResponsesStream(frame(include=True)), events)
    final = check_stream(out)
    got: list[tuple[str, Any]] = []
    for item in final["output"]:
        if item["type"] == "message":
            got.append(("message", item["content"][0]["text"]))
        elif item["type"] == "reasoning":
            got.append(("reasoning", unpack_reasoning(item["encrypted_content"])))
        else:
            got.append(("function_call", json.loads(item["arguments"])))
    assert got == expected
    assert final["status"] == ("incomplete" if events[-2]["delta"]["stop_reason"] == "max_tokens" else "completed")


_item = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, _text),
    st.builds(lambda t: {"role": "developer", "content": t}, _text),
    st.builds(lambda t: {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t}]}, _text),
    st.builds(lambda n: {"type": "function_call", "call_id": f"c{n}", "name": "f", "arguments": "{}"}, st.integers(0, 4)),
    st.builds(lambda n: {"type": "function_call_output", "call_id": f"c{n}", "output": "o"}, st.integers(0, 5)),
    st.builds(lambda s: {"type": "reasoning", "summary": [], "encrypted_content":
                         pack_reasoning([{"type": "thinking", "thinking": "", "signature": s}])}, st.text("abc", min_size=1)),
    st.just({"type": "web_search_call", "id": "ws"}),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_item, min_size=1, max_size=12))
def test_property_any_history_gives_a_conversation_claude_accepts(items: list[dict[str, Any]]) -> None:
    # Call ids unique, as clients send them.
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.get("type") == "function_call":
            if item["call_id"] in seen:
                continue
            seen.add(item["call_id"])
        unique.append(item)
    body = {"model": "c", "input": unique, "tools": [{"type": "function", "name": "f"}]}
    try:
        ir = responses_request_to_ir(body)
    except InvalidRequest as e:
        assert e.param == "input"  # nothing but system text
        return
    messages = ir["messages"]
    assert all(a["role"] != b["role"] for a, b in zip(messages, messages[1:]))
    for n, message in enumerate(messages):
        made = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        if made:
            assert message["role"] == "assistant"
            following = messages[n + 1]["content"]
            assert sorted(b["tool_use_id"] for b in following if b["type"] == "tool_result") == sorted(made)
            assert all(b["type"] == "tool_result" for b in following[: len(made)])
        if message["role"] == "user":
            results = [b["tool_use_id"] for b in message["content"] if b["type"] == "tool_result"]
            previous = [b["id"] for b in messages[n - 1]["content"] if b["type"] == "tool_use"] if n else []
            assert set(results) <= set(previous)


def test_gpt_request_pairs_calls_and_outputs_and_fits_the_model() -> None:
    body = {"model": "gpt-4.1", "temperature": 0.2, "reasoning": {"summary": "auto"}, "input": [
        {"role": "user", "content": "go"},
        {"type": "web_search_call", "id": "ws_1"},
        {"type": "function_call_output", "call_id": "ws_1", "output": "results"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"role": "user", "content": "stop"}]}
    up = gpt_request(body, map_tools([{"type": "function", "name": "f"}]), model="gpt-4.1", reasoning_model=False)
    assert up["input"] == [
        {"role": "user", "content": "go"},
        {"role": "user", "content": "Output of tool call ws_1:\nresults"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "No output was recorded for this call."},
        {"role": "user", "content": "stop"}]
    assert "reasoning" not in up and up["temperature"] == 0.2
    up = gpt_request(body, map_tools(None), model="gpt-5", reasoning_model=True)
    assert up["reasoning"] == {"summary": "auto"} and "temperature" not in up


def test_rendered_text_deltas_are_exactly_their_json() -> None:
    from sapproxy.translate.framing.sse import Rendered, json_text

    rendered = []
    for stream in recorded_streams(fixture_path("openai-responses/openai-reasoning-encrypted-content.1.chunks.txt")):
        passthrough = ResponsesPassthrough(frame())
        rendered += [e for ev in stream for e in passthrough.feed(ev) if type(e) is Rendered]
    translator = IRToResponsesStream(frame())
    events = anthropic_events(fixture_path("anthropic-chunks/anthropic-text.chunks.txt"))
    rendered += [e for ev in events for e in translator.feed(ev) if type(e) is Rendered]
    assert len(rendered) >= 10
    for event in rendered:
        assert event.json == json_text(dict(event))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.lists(st.integers(0, 200), max_size=10), st.booleans())
def test_property_a_custom_input_streams_exactly_whatever_the_pieces(text: str, cuts: list[int], ascii: bool) -> None:
    from sapproxy.translate.responses_items import InputStreamer

    arguments = json.dumps({"input": text}, ensure_ascii=ascii)
    points = sorted({c % (len(arguments) + 1) for c in cuts})
    pieces = [arguments[a:b] for a, b in zip([0, *points], [*points, len(arguments)])]
    streamer = InputStreamer()
    assert "".join(streamer.feed(p) for p in pieces) == text == streamer.streamed


def test_a_custom_tool_input_streams_as_it_comes_for_claude_and_gpt() -> None:
    patch = "*** Begin Patch\n*** Update File: a.py\n-x = \"old\"\n+x = \"new\" \u00e9\n*** End Patch"
    arguments = json.dumps({"input": patch})
    pieces = [arguments[i:i + 7] for i in range(0, len(arguments), 7)]
    tools = map_tools([{"type": "custom", "name": "apply_patch"}])
    ir_events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [],
                                              "model": "c", "usage": {"input_tokens": 3, "output_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                       "name": "apply_patch", "input": {}}},
        *[{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}
          for p in pieces],
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"}]
    native: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "r", "status": "in_progress", "output": []}},
        {"type": "response.in_progress", "response": {"id": "r", "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": {
            "id": "fc_1", "type": "function_call", "status": "in_progress", "arguments": "", "call_id": "call_1",
            "name": "apply_patch"}},
        *[{"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": p}
          for p in pieces],
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0, "arguments": arguments},
        {"type": "response.output_item.done", "output_index": 0, "item": {
            "id": "fc_1", "type": "function_call", "status": "completed", "arguments": arguments,
            "call_id": "call_1", "name": "apply_patch"}},
        {"type": "response.completed", "response": {"id": "r", "status": "completed", "output": [{
            "id": "fc_1", "type": "function_call", "status": "completed", "arguments": arguments,
            "call_id": "call_1", "name": "apply_patch"}], "usage": {"input_tokens": 3, "output_tokens": 9,
                                                                    "total_tokens": 12}}}]
    for translator, events in ((IRToResponsesStream(frame(tools=tools)), ir_events),
                               (ResponsesPassthrough(frame(tools=tools)), native)):
        out = run(translator, events)
        check_stream(out, recorded=True)
        deltas = [e["delta"] for e in out if e["type"] == "response.custom_tool_call_input.delta"]
        assert len(deltas) > 5 and "".join(deltas) == patch
        (done,) = [e for e in out if e["type"] == "response.custom_tool_call_input.done"]
        assert done["input"] == patch and done["item_id"].startswith("ctc_")
        final = out[-1]["response"]["output"]
        assert [(i["type"], i["input"]) for i in final] == [("custom_tool_call", patch)]


# ------------------------------------------------------------------ the IR directions of the Responses wire


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_recorded_responses_streams_become_valid_ir_streams(path: Any) -> None:
    from conftest import accumulate_anthropic
    from sapproxy.translate.wire.openai_responses import ResponsesToIRStream

    for stream in recorded_streams(path):
        translator = ResponsesToIRStream("gpt-x", "msg_1")
        events = [e for ev in json.loads(json.dumps(stream)) for e in translator.feed(ev)] + translator.finish()
        if events and events[-1]["type"] == "error":
            assert stream[-1]["type"] == "response.failed"
            continue
        message = accumulate_anthropic(events)
        texts = "".join(p["text"] for i in stream[-1]["response"]["output"] if i["type"] == "message"
                        for p in i["content"] if p["type"] == "output_text")
        assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == texts or not gapless(stream)
        calls = [(i["call_id"], json.loads(i["arguments"])) for i in stream[-1]["response"]["output"]
                 if i["type"] == "function_call"]
        assert [(b["id"], b["input"]) for b in message["content"] if b["type"] == "tool_use"] == calls
        assert message["stop_reason"] == ("tool_use" if calls else "end_turn")
        assert message["usage"]["output_tokens"] == stream[-1]["response"]["usage"]["output_tokens"]


def test_ir_to_a_responses_only_gpt_and_back() -> None:
    from sapproxy.translate.wire import WireTarget
    from sapproxy.translate.wire.openai_responses import WIRE_FORMAT as RESPONSES_WIRE

    ir_body = {"model": "c", "system": "Be brief.", "max_tokens": 300, "thinking": {"type": "enabled", "budget_tokens": 2048},
               "tools": [{"name": "shell", "input_schema": {"type": "object", "properties": {}}}],
               "tool_choice": {"type": "tool", "name": "shell"},
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "shell",
                                                               "input": {"command": ["ls"]}}]},
                            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "a.txt"}]}]}
    request = RESPONSES_WIRE.request(ir_body, WireTarget("gpt-5-codex", reasoning=True), True)  # type: ignore[arg-type]
    body = json.loads(request.body)
    assert request.operation == "responses" and request.stream and body["stream"] is True
    assert body["instructions"] == "Be brief." and body["store"] is False and body["model"] == "gpt-5-codex"
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": '{"command":["ls"]}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a.txt"}]
    assert body["tools"][0]["type"] == "function" and body["tools"][0]["name"] == "shell"
    assert body["tool_choice"] == {"type": "function", "name": "shell"}
    assert body["reasoning"]["effort"] and body["include"] == ["reasoning.encrypted_content"]
    whole = {"id": "resp_abc", "status": "completed", "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
             "output": [{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}],
                         "encrypted_content": "gAAAA"},
                        {"type": "message", "id": "msg_1", "role": "assistant",
                         "content": [{"type": "output_text", "text": "done", "annotations": []}]}]}
    message = RESPONSES_WIRE.response_to_ir(whole, "gpt-5-codex")
    assert message["content"] == [{"type": "thinking", "thinking": "hmm", "signature": "gAAAA"},
                                  {"type": "text", "text": "done"}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] == 7
