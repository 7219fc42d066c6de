"""
An OpenAI Chat Completions client in front of an IR (Anthropic) upstream: sapproxy.translate.client.openai_chat.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import fixture_path
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.client.openai_chat import AnthropicToOpenAIStream, chat_request_to_ir, ir_response_to_chat
from test_tr_openai_support import (
    accumulate_anthropic,
    accumulate_openai,
    anthropic_events,
    check_chunks,
    check_completion,
    sdk_final_completion,
)

SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/+Z/0a/=="


def _param(body: dict[str, Any]) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        chat_request_to_ir(body)
    return caught.value.param


# ------------------------------------------------------------------------------------------- requests


def test_minimal_request() -> None:
    ir = chat_request_to_ir({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    # no limit set: a default the wire's fitting replaces with the model's ceiling (issue 14, item 7)
    assert ir == {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 4096,
                  "_max_tokens_default": True}
    assert chat_request_to_ir({"messages": [{"role": "user", "content": "hi"}]}, default_max_tokens=99)["max_tokens"] == 99


def test_system_and_developer_messages_become_system_blocks() -> None:
    ir = chat_request_to_ir(
        {
            "messages": [
                {"role": "system", "content": "one"},
                {"role": "developer", "content": [{"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "three"},
            ]
        }
    )
    assert ir["system"] == [
        {"type": "text", "text": "one"},
        {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "three"},
    ]
    assert [m["role"] for m in ir["messages"]] == ["user"]


def test_images() -> None:
    ir = chat_request_to_ir(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what?"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    ],
                }
            ]
        }
    )
    assert ir["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]
    assert _param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}) == (
        "messages[0].content[0].image_url.url"
    )


def test_pdf_file_part() -> None:
    ir = chat_request_to_ir(
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}}]}]}
    )
    assert ir["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}
    ]


def test_tool_loop_is_merged_into_alternating_turns() -> None:
    ir = chat_request_to_ir(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "w", "arguments": '{"city": "Rome"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "user", "content": "thanks"},
                {"role": "user", "content": "and?"},
            ],
            "tools": [{"type": "function", "function": {"name": "w", "description": "weather"}}],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert ir["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "w", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
                {"type": "text", "text": "thanks"},
                {"type": "text", "text": "and?"},
            ],
        },
    ]
    assert ir["tools"] == [{"name": "w", "description": "weather", "input_schema": {"type": "object", "properties": {}}}]
    assert ir["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "w"}}, {"type": "tool", "name": "w"}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    ir = chat_request_to_ir(
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": choice}
    )
    assert ir["tool_choice"] == expected


def test_invalid_tool_arguments_name_the_path() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "w", "arguments": "{oops"}}]},
        ]
    }
    assert _param(body) == "messages[1].tool_calls[0].function.arguments"


def test_bad_input_names_the_path() -> None:
    assert _param({"messages": [{"role": "user", "content": "x"}, {"role": "wizard", "content": "x"}]}) == "messages[1].role"
    assert _param({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": [{"type": "input_audio"}]}]}) == (
        "messages[1].content[0].type"
    )
    assert _param({"messages": [{"role": "user", "content": "x"}], "n": 2}) == "n"
    assert _param({"messages": []}) == "messages"
    assert _param({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"}) == "reasoning_effort"
    assert _param({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}) == "max_tokens"
    assert _param({"messages": [{"role": "tool", "content": "x"}]}) == "messages[0].tool_call_id"


def test_sampling_and_limits() -> None:
    ir = chat_request_to_ir(
        {
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "u-1",
            "stream": True,
        }
    )
    assert ir["max_tokens"] == 20
    assert (ir["temperature"], ir["top_p"], ir["stop_sequences"]) == (0.2, 0.9, ["END"])
    assert ir["metadata"] == {"user_id": "u-1"}
    assert ir["stream"] is True
    # whitespace-only stop sequences stay in the IR (GPT and Gemini take them); the Claude path drops them
    assert chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "stop": ["a", " ", "b", ""]})["stop_sequences"] == ["a", " ", "b"]


def test_reasoning_effort_turns_thinking_on() -> None:
    ir = chat_request_to_ir(
        {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium", "max_tokens": 1000, "temperature": 0.3}
    )
    assert ir["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert ir["max_tokens"] > 8192
    assert "temperature" not in ir
    # "none" is said out loud: Gemini thinks unless told not to (issue 14, item 17)
    assert chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "none"})["thinking"] == {"type": "disabled"}


def test_thinking_off_where_claude_would_refuse_it() -> None:
    loop: list[dict[str, Any]] = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]
    tools = [{"type": "function", "function": {"name": "w"}}]
    assert "thinking" not in chat_request_to_ir({"messages": loop, "tools": tools, "reasoning_effort": "high"})
    signed = [loop[0], {**loop[1], "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": SIGNATURE}]}, loop[2]]
    assert chat_request_to_ir({"messages": signed, "tools": tools, "reasoning_effort": "high"})["thinking"]["budget_tokens"] == 16384
    forced = {"messages": [loop[0]], "tools": tools, "tool_choice": "required", "reasoning_effort": "high"}
    assert "thinking" not in chat_request_to_ir(forced)


def test_empty_texts_are_dropped() -> None:
    ir = chat_request_to_ir({"messages": [{"role": "system", "content": " "}, {"role": "user", "content": [{"type": "text", "text": "\n"}, {"type": "text", "text": "a"}]}]})
    assert "system" not in ir and ir["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"}]}]
    assert _param({"messages": [{"role": "system", "content": "only a system prompt"}]}) == "messages"


def test_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "response_format": rf})
    assert ir["_response_format"] == rf
    assert "JSON" in ir["system"][-1]["text"] and '"integer"' in ir["system"][-1]["text"]
    ir = chat_request_to_ir({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})
    # json_object travels too, for Gemini's responseMimeType (issue 14, item 11)
    assert ir["_response_format"] == {"type": "json_object"} and "JSON" in ir["system"][0]["text"]


def test_thinking_blocks_round_trip_byte_for_byte() -> None:
    message = {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "Let me think…\n", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": "ENCRYPTED=="},
            {"type": "text", "text": "I'll call it."},
            {"type": "tool_use", "id": "toolu_01X", "name": "w", "input": {"q": "ü \"x\""}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    completion = ir_response_to_chat(message, "gpt-4o", created=7)
    check_completion(completion)
    assistant = completion["choices"][0]["message"]
    request = {
        "messages": [
            {"role": "user", "content": "go"},
            {k: v for k, v in assistant.items() if k not in ("refusal", "annotations")},
            {"role": "tool", "tool_call_id": "toolu_01X", "content": "done"},
        ]
    }
    ir = chat_request_to_ir(json.loads(json.dumps(request)))
    assert ir["messages"][1]["content"] == message["content"]


# ------------------------------------------------------------------------------------------- responses


def test_response_text_and_usage_with_cache() -> None:
    message = {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4",
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
    }
    completion = ir_response_to_chat(message, "gpt-4o", created=1700000000)
    check_completion(completion)
    assert completion["id"] == "chatcmpl-01XYZ"
    assert completion["model"] == "gpt-4o"
    assert completion["choices"][0]["message"]["content"] == "Hello world"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in completion["choices"][0]["message"]
    assert completion["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


@pytest.mark.parametrize(
    "stop, finish",
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
        ("something_new", "stop"),
    ],
)
def test_stop_reason_mapping(stop: str | None, finish: str) -> None:
    message: dict[str, Any] = {"id": "msg_1", "content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {}}
    completion = ir_response_to_chat(message, "m", created=1, completion_id="chatcmpl-fixed")
    check_completion(completion)
    assert completion["id"] == "chatcmpl-fixed"
    assert completion["choices"][0]["finish_reason"] == finish


def test_response_only_tool_calls_has_null_content() -> None:
    message = {
        "id": "msg_1",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"a": [1, 2]}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    completion = ir_response_to_chat(message, "m", created=1)
    check_completion(completion)
    msg = completion["choices"][0]["message"]
    assert msg["content"] is None
    assert msg["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": '{"a": [1, 2]}'}}]


# ------------------------------------------------------------------------------------------- streams


def _run(events: list[dict[str, Any]], include_usage: bool = True) -> list[dict[str, Any]]:
    stream = AnthropicToOpenAIStream("gpt-4o", completion_id="chatcmpl-abc", created=1234, include_usage=include_usage)
    out: list[dict[str, Any]] = []
    for event in events:
        out += stream.feed(event)
    out += stream.finish()
    assert stream.finish() == []
    return out


FIXTURES_IN = [
    "anthropic/basic_response.txt",
    "anthropic/extra_fields_response.txt",
    "anthropic/incomplete_partial_json_response.txt",
    "anthropic/missing_usage_response.txt",
    "anthropic/out_of_order_response.txt",
    "anthropic/refusal_response.txt",
    "anthropic/server_tool_use_response.txt",
    "anthropic/stop_details_response.txt",
    "anthropic/tool_use_response.txt",
    "anthropic-chunks/anthropic-claude-sonnet-5-reasoning-generic.chunks.txt",
    "anthropic-chunks/anthropic-claude-sonnet-5-reasoning-summarized.chunks.txt",
    "anthropic-chunks/anthropic-clear-thinking.1.chunks.txt",
    "anthropic-chunks/anthropic-code-execution-20260120-issue-18193.chunks.txt",
    "anthropic-chunks/anthropic-issue-11719-quoted-tool-input.chunks.txt",
    "anthropic-chunks/anthropic-json-tool.1.chunks.txt",
    "anthropic-chunks/anthropic-text.chunks.txt",
    "anthropic-chunks/duplicate-message-start.chunks.txt",
]


@pytest.mark.parametrize("name", FIXTURES_IN)
@pytest.mark.parametrize("include_usage", [True, False])
def test_fixture_streams(name: str, include_usage: bool) -> None:
    events = anthropic_events(fixture_path(name))
    chunks = _run(events, include_usage)
    check_chunks(chunks)
    source = accumulate_anthropic(events)
    got = accumulate_openai(chunks)
    assert got["text"] == source["text"]
    assert got["reasoning"] == source["thinking"]
    # The openai SDK's own accumulator agrees (text, tool calls, finish reason, usage).
    final = sdk_final_completion(chunks)
    assert (final.choices[0].message.content or "") == source["text"]
    assert [(c.id, c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls or []] == [
        (c["id"], c["name"], c["arguments"]) for c in source["tool_calls"]
    ]
    assert final.choices[0].finish_reason == got["finish_reason"]
    assert (final.usage is not None) == include_usage
    assert [(c["id"], c["name"], c["arguments"]) for c in got["tool_calls"]] == [
        (c["id"], c["name"], c["arguments"]) for c in source["tool_calls"]
    ]
    # One role chunk, first; one finish chunk; usage last (and only) when asked for.
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert sum(1 for c in chunks if c["choices"] and "role" in c["choices"][0]["delta"]) == 1
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) == 1
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)
    # Signatures come through byte for byte.
    signatures = [b["signature"] for b in got["thinking_blocks"] if b["type"] == "thinking"]
    assert signatures == [s for s in source["signatures"]]


def test_golden_basic_response() -> None:
    chunks = _run(anthropic_events(fixture_path("anthropic/basic_response.txt")))
    base = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1234, "model": "gpt-4o", "usage": None}

    def c(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    assert chunks == [
        c({"role": "assistant", "content": ""}),
        c({"content": "Hello"}),
        c({"content": " there"}),
        c({"content": "!"}),
        c({}, "stop"),
        {
            "id": "chatcmpl-abc",
            "object": "chat.completion.chunk",
            "created": 1234,
            "model": "gpt-4o",
            "choices": [],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 6,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
    ]


def test_golden_tool_use_response() -> None:
    chunks = _run(anthropic_events(fixture_path("anthropic/tool_use_response.txt")), include_usage=False)
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks]
    assert deltas == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "I"}, None),
        ({"content": "'ll check the current weather in Paris for you."}, None),
        (
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            },
            None,
        ),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"locati'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": 'on": "P'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "ar"}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]}, None),
        ({}, "tool_calls"),
    ]


def test_thinking_signature_and_cache_usage() -> None:
    events = anthropic_events(fixture_path("anthropic-chunks/anthropic-claude-sonnet-5-reasoning-generic.chunks.txt"))
    source = next(e["delta"]["signature"] for e in events if e.get("delta", {}).get("type") == "signature_delta")
    blocks = accumulate_openai(_run(events))["thinking_blocks"]
    assert blocks == [{"index": 0, "type": "thinking", "thinking": "", "signature": source}]
    assert len(source) > 300
    chunks = _run(anthropic_events(fixture_path("anthropic-chunks/anthropic-code-execution-20260120-issue-18193.chunks.txt")))
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] == 6 + 452 + 9429 and usage["prompt_tokens_details"]["cached_tokens"] == 9429
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 182
    # The server-side tool blocks are not the client's to run: no tool_calls reach it.
    assert accumulate_openai(chunks)["tool_calls"] == []


def test_max_tokens_and_refusal() -> None:
    got = accumulate_openai(_run(anthropic_events(fixture_path("anthropic/incomplete_partial_json_response.txt"))))
    assert got["finish_reason"] == "length"
    assert got["tool_calls"][0]["arguments"].startswith('{"filename": "taxes.txt')
    got = accumulate_openai(_run(anthropic_events(fixture_path("anthropic/refusal_response.txt"))))
    assert got["finish_reason"] == "content_filter"


def test_message_stop_without_message_delta_and_stream_cut_short() -> None:
    chunks = _run(anthropic_events(fixture_path("anthropic/out_of_order_response.txt")))
    check_chunks(chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "stop"]
    # Cut after a text delta: finish() closes with stop and the usage learnt so far.
    events = anthropic_events(fixture_path("anthropic/basic_response.txt"))[:4]
    chunks = _run(events)
    check_chunks(chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 11


def test_error_event_ends_the_stream() -> None:
    stream = AnthropicToOpenAIStream("m", completion_id="chatcmpl-x", created=1, include_usage=True)
    out = stream.feed({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}})
    out += stream.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert out[-1] == {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded_error"}}
    assert stream.feed({"type": "message_stop"}) == [] and stream.finish() == []
    check_chunks(out)


def test_unknown_events_and_parallel_tools() -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "brand_new_event", "x": 1},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"x": "a\\"'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": 'b"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    chunks = _run(events)
    check_chunks(chunks)
    got = accumulate_openai(chunks)
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in got["tool_calls"]] == [
        ("toolu_a", "f", {"x": 'a"b'}),
        ("toolu_b", "g", {}),
    ]
    assert got["finish_reason"] == "tool_calls"
    assert got["usage"]["completion_tokens"] == 9
