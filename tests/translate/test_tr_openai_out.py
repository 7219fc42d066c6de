"""
A GPT (Azure OpenAI) upstream behind an Anthropic Messages client: sapproxy.translate.wire.openai_chat.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import fixture_path
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.wire.openai_chat import OpenAIToAnthropicStream, chat_response_to_ir, ir_request_to_chat
from test_tr_openai_support import (
    accumulate_anthropic,
    accumulate_openai,
    check_events,
    check_message,
    openai_chunks,
    sdk_final_message,
    vcr_bodies,
)

# ------------------------------------------------------------------------------------------- requests


def test_full_request() -> None:
    body = {
        "model": "claude-sonnet-4",
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use tools."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Zürich"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "also this"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}], "is_error": False},
                ],
            },
        ],
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "max_tokens": 100,
        "temperature": 0.5,
        "top_k": 5,
        "stop_sequences": ["a", "b", "c", "d"],
        "metadata": {"user_id": "u1"},
        "stream": True,
    }
    out = ir_request_to_chat(body, reasoning_model=False)
    assert out == {
        "model": "claude-sonnet-4",
        "messages": [
            {"role": "system", "content": "Be brief.\n\nUse tools."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Zürich"}'}}],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            {"role": "user", "content": "also this"},
        ],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "description": "weather"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_tokens": 100,
        "temperature": 0.5,
        "stop": ["a", "b", "c", "d"],
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_reasoning_model_request() -> None:
    body = {
        "system": "sys",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2000,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["x"],
        "thinking": {"type": "enabled", "budget_tokens": 10000},
    }
    out = ir_request_to_chat(body, reasoning_model=True)
    assert out == {
        "messages": [{"role": "developer", "content": "sys"}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 2000,
        "reasoning_effort": "medium",
    }
    assert "reasoning_effort" not in ir_request_to_chat({**body, "thinking": {"type": "disabled"}}, reasoning_model=True)


@pytest.mark.parametrize(
    "choice, expected",
    [({"type": "auto"}, "auto"), ({"type": "none"}, "none"), ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}})],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "w", "input_schema": {"type": "object"}}], "tool_choice": choice}
    assert ir_request_to_chat(body, reasoning_model=False)["tool_choice"] == expected


def test_tool_result_error_and_images() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "is_error": True,
                        "content": [{"type": "text", "text": "boom"}, {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}],
                    }
                ],
            }
        ]
    }
    assert ir_request_to_chat(body, reasoning_model=False)["messages"] == [
        {"role": "tool", "tool_call_id": "t", "content": "Error: boom"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
    ]


def test_invalid_requests() -> None:
    with pytest.raises(InvalidRequest) as caught:
        ir_request_to_chat({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, reasoning_model=False)
    assert caught.value.param == "messages[0].content[0].type"
    with pytest.raises(InvalidRequest) as caught:
        ir_request_to_chat(
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            reasoning_model=False,
        )
    assert caught.value.param == "tools[0].type"


# ------------------------------------------------------------------------------------------- responses


def test_fixture_non_streaming_responses() -> None:
    resp = json.loads(vcr_bodies(fixture_path("openai/chat-tools.yaml"))[1])
    message = chat_response_to_ir(resp, "claude-sonnet-4")
    check_message(message)
    assert message["id"] == "msg_" + resp["id"][len("chatcmpl-") :]
    assert message["stop_reason"] == "tool_use"
    call = resp["choices"][0]["message"]["tool_calls"][0]
    assert message["content"] == [
        {"type": "tool_use", "id": call["id"], "name": "get_current_weather", "input": json.loads(call["function"]["arguments"])}
    ]
    resp = json.loads(vcr_bodies(fixture_path("openai/chat-reasoning.yaml"))[1])
    message = chat_response_to_ir(resp, "claude-x")
    check_message(message)
    assert message["content"][0]["text"] == resp["choices"][0]["message"]["content"]
    assert message["usage"] == {"input_tokens": 27, "output_tokens": 267, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                                "output_tokens_details": {"thinking_tokens": 192}}
    resp = json.loads(fixture_path("openai/openai-text.json").read_text())
    check_message(chat_response_to_ir(resp, "claude-x"))


@pytest.mark.parametrize(
    "finish, stop",
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("function_call", "tool_use"), ("content_filter", "refusal"), (None, "end_turn")],
)
def test_finish_reason_mapping(finish: str | None, stop: str) -> None:
    resp = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]}
    message = chat_response_to_ir(resp, "m")
    check_message(message)
    assert message["stop_reason"] == stop


def test_response_cache_usage_and_bad_arguments() -> None:
    resp = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": '}},
                        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
                    ],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}},
    }
    message = chat_response_to_ir(resp, "m")
    check_message(message)
    assert [b["input"] for b in message["content"]] == [{}, {}]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0}


# ------------------------------------------------------------------------------------------- streams


def _run(chunks: list[dict[str, Any]], message_id: str | None = None) -> list[dict[str, Any]]:
    stream = OpenAIToAnthropicStream("claude-sonnet-4", message_id=message_id)
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out += stream.feed(chunk)
    out += stream.finish()
    assert stream.finish() == []
    return out


FIXTURES_OUT = [
    "openai/openai-text.chunks.txt",
    "openai/azure-model-router.1.chunks.txt",
    "openai/chat-streaming.yaml",
    "openai/chat-streaming-detailed-usage.yaml",
]


@pytest.mark.parametrize("name", FIXTURES_OUT)
def test_fixture_streams(name: str) -> None:
    chunks = openai_chunks(fixture_path(name))
    events = _run(chunks)
    check_events(events)
    source = accumulate_openai(chunks)
    got = accumulate_anthropic(events)
    assert got["text"] == source["text"]
    assert got["stop_reason"] == {"stop": "end_turn", "length": "max_tokens"}[source["finish_reason"]]
    final = sdk_final_message(events)
    check_message(final.to_dict())
    assert "".join(b.text for b in final.content if b.type == "text") == source["text"]
    if source["usage"]:
        assert final.usage.output_tokens == source["usage"]["completion_tokens"]
    if source["usage"]:
        assert got["usage"]["output_tokens"] == source["usage"]["completion_tokens"] > 0
        assert got["usage"]["input_tokens"] == source["usage"]["prompt_tokens"]
    first = next(c for c in chunks if c["id"])
    assert events[0]["message"]["id"] == "msg_" + first["id"][len("chatcmpl-") :]
    assert events[0]["message"]["model"] == "claude-sonnet-4"


def test_golden_azure_stream() -> None:
    events = _run(openai_chunks(fixture_path("openai/azure-model-router.1.chunks.txt")), message_id="msg_fixed")
    text = [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in ("Capital", " of", " Denmark", ".")]
    assert events == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_fixed",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *text,
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 15, "output_tokens": 78, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                      "output_tokens_details": {"thinking_tokens": 64}},
        },
        {"type": "message_stop"},
    ]


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None, choices: bool = True) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-T", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    chunk["usage"] = usage
    return chunk


def test_tools_reasoning_and_interleaving() -> None:
    chunks = [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"reasoning_content": "Think"}),
        _chunk({"reasoning_content": "ing."}),
        _chunk({"content": "Calling."}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_A", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "a\\"'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_B", "type": "function", "function": {"name": "g", "arguments": '{"n":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'b"}'}}]}),  # interleaved late fragment
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": " 1}"}}]}),
        _chunk({}, "tool_calls"),
        _chunk(choices=False, usage={"prompt_tokens": 50, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 10}}),
    ]
    events = _run(chunks)
    got = accumulate_anthropic(events)
    final = sdk_final_message(events)
    assert [(b.id, b.input) for b in final.content if b.type == "tool_use"] == [("call_A", {"q": 'a"b'}), ("call_B", {"n": 1})]
    assert got["thinking"] == "Thinking."
    assert got["text"] == "Calling."
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in got["tool_calls"]] == [
        ("call_A", "f", {"q": 'a"b'}),
        ("call_B", "g", {"n": 1}),
    ]
    assert got["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {"input_tokens": 40, "output_tokens": 20, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0}
    # Schema-valid even with the late fragment (the order check in check_events is about starts/stops).
    from test_tr_openai_support import _EVENT_ADAPTER

    for event in events:
        _EVENT_ADAPTER.validate_python(event)


def test_finish_before_usage_waits_for_usage() -> None:
    stream = OpenAIToAnthropicStream("m")
    out = stream.feed(_chunk({"content": "hi"}))
    out += stream.feed(_chunk({}, "length"))
    assert [e["type"] for e in out][-1] == "content_block_stop"  # message_delta waits for the usage chunk
    out += stream.feed(_chunk(choices=False, usage={"prompt_tokens": 3, "completion_tokens": 2}))
    assert [e["type"] for e in out][-2:] == ["message_delta", "message_stop"]
    assert out[-2]["usage"]["output_tokens"] == 2 and out[-2]["delta"]["stop_reason"] == "max_tokens"
    assert stream.finish() == []
    check_events(out)
    # Without a usage chunk, finish() closes it.
    stream = OpenAIToAnthropicStream("m")
    out = stream.feed(_chunk({"content": "hi"})) + stream.feed(_chunk({}, "stop"))
    out += stream.finish()
    check_events(out)
    assert out[-2]["delta"]["stop_reason"] == "end_turn"


def test_error_chunk() -> None:
    stream = OpenAIToAnthropicStream("m")
    out = stream.feed(_chunk({"content": "hi"}))
    out += stream.feed({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
    assert out[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}
    assert stream.feed(_chunk({"content": "more"})) == [] and stream.finish() == []


def test_empty_stream_and_refusal() -> None:
    events = _run([])
    check_events(events)
    events = _run([_chunk({"refusal": "I can't help with that."}), _chunk({}, "stop")])
    check_events(events)
    got = accumulate_anthropic(events)
    assert got["text"] == "I can't help with that." and got["stop_reason"] == "refusal"
