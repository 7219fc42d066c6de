"""
The official C{openai} SDK against a real gateway daemon in front of a real simulator process: what an OpenAI
client sees for GPT (pass-through), Claude and Gemini (translated) models.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any, Iterator

import openai
import pytest
from daemon_harness import DEFAULT_MODELS, TOKEN, Stack, running_stack, sse_data

pytestmark = pytest.mark.integration

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("openai-sdk")) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base}/v1", api_key=TOKEN, max_retries=0, timeout=30)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _collect(stream: Any) -> list[Any]:
    return [chunk for chunk in stream]


def _stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# ---------------------------------------------------------------------------------------------------------------
# GPT, passed through.


def test_int_openai_nonstream_gpt(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="gpt-4.1", messages=_user("hello there"))
    assert resp.model == "gpt-4.1"
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content.startswith("Echo: hello there")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_int_openai_stream_gpt_matches_nonstream(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="gpt-4.1", messages=_user("stream me"))
    chunks = _collect(client.chat.completions.create(model="gpt-4.1", messages=_user("stream me"), stream=True))
    assert chunks, "no chunks"
    assert len({c.id for c in chunks}) == 1, "one completion id across the stream"
    assert {c.model for c in chunks} == {"gpt-4.1"}
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant", "role comes first"
    assert _stream_text(chunks) == whole.choices[0].message.content
    assert with_choices[-1].choices[0].finish_reason == "stop"
    # No usage was asked for: no usage chunk, and no chunk without choices.
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_int_openai_stream_include_usage_gpt(client: openai.OpenAI) -> None:
    chunks = _collect(client.chat.completions.create(
        model="gpt-4.1", messages=_user("count me"), stream=True, stream_options={"include_usage": True}))
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert chunks[-1] is usage_chunks[0], "the usage chunk comes last"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0
    assert all(c.choices for c in chunks[:-1])


def _raw_stream(stack: Stack, model: str, include_usage: bool | None, **body: Any) -> list[str]:
    payload: dict[str, Any] = {"model": model, "messages": _user("raw please"), "stream": True, **body}
    if include_usage is not None:
        payload["stream_options"] = {"include_usage": include_usage}
    reply = stack.gateway.post("/v1/chat/completions", payload)
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("text/event-stream")
    return sse_data(reply.body)


def test_int_openai_whole_responses_carry_their_length(stack: Stack) -> None:
    """
    A whole response (and an error) is sent in one piece with Content-Length, not chunked; a stream is chunked.
    """
    for model, status in (("gpt-4.1", 200), ("gemini-2.5-pro", 200), ("gpt-nonexistent-9", 404)):
        reply = stack.gateway.post("/v1/chat/completions", {"model": model, "messages": _user("hi")})
        assert reply.status == status, reply
        assert reply.headers["content-length"] == str(len(reply.body)), reply.headers
        assert "transfer-encoding" not in reply.headers
        reply.json()
    reply = stack.gateway.post("/v1/chat/completions", {"model": "gpt-4.1", "stream": True, "messages": _user("hi")})
    assert reply.headers.get("transfer-encoding") == "chunked" and "content-length" not in reply.headers


@pytest.mark.parametrize("model", ["gpt-4.1", "anthropic--claude-4.5-sonnet", "gemini-2.5-pro"])
@pytest.mark.parametrize("include_usage", [None, True])
def test_int_openai_raw_stream_framing(stack: Stack, model: str, include_usage: bool | None) -> None:
    data = _raw_stream(stack, model, include_usage)
    assert data.count("[DONE]") == 1, data[-3:]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    empty = [c for c in chunks if c.get("choices") == []]
    for c in empty:
        assert c.get("usage"), f"a chunk with choices: [] must be the usage chunk: {c}"
    if include_usage:
        assert len(empty) == 1 and chunks[-1] is empty[0]
    else:
        assert empty == []
        assert all(not c.get("usage") for c in chunks)


def test_int_openai_models_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == set(DEFAULT_MODELS)


def test_int_openai_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"],
                                      encoding_format="float")
    assert floats.model == "text-embedding-3-small"
    assert [d.index for d in floats.data] == [0, 1]
    vector = floats.data[0].embedding
    assert isinstance(vector, list) and len(vector) > 0 and all(isinstance(x, float) for x in vector)
    assert floats.usage.prompt_tokens > 0
    # Explicit base64: the SDK hands the string over as is.
    b64 = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"],
                                   encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)  # type: ignore[arg-type]
    decoded = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert decoded == pytest.approx(vector, abs=1e-6)
    # The SDK's default asks for base64 and decodes it itself.
    default = client.embeddings.create(model="text-embedding-3-small", input="one")
    assert default.data[0].embedding == pytest.approx(vector, abs=1e-6)


def test_int_openai_dated_name_resolves(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="gpt-4.1-2025-04-14", messages=_user("dated"))
    assert resp.model == "gpt-4.1-2025-04-14", "the model name is echoed as requested"
    assert resp.choices[0].message.content.startswith("Echo: dated")


def test_int_openai_unknown_model_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nonexistent-9", messages=_user("x"))
    assert caught.value.status_code == 404
    assert "gpt-nonexistent-9" in caught.value.message
    body = caught.value.body
    assert isinstance(body, dict) and body.get("code") == "model_not_found"


# ---------------------------------------------------------------------------------------------------------------
# Every family through the same client.

MODELS = ["gpt-4.1", "anthropic--claude-4.5-sonnet", "claude-sonnet-4-5-20250929", "anthropic--claude-4.5-haiku",
          "gemini-2.5-pro"]


@pytest.mark.parametrize("model", MODELS)
def test_int_openai_families_stream_and_nonstream(client: openai.OpenAI, model: str) -> None:
    whole = client.chat.completions.create(model=model, messages=_user(f"family {model}"))
    assert whole.model == model
    text = whole.choices[0].message.content
    assert text.startswith(f"Echo: family {model}")
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0

    chunks = _collect(client.chat.completions.create(model=model, messages=_user(f"family {model}"), stream=True,
                                                     stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1
    assert {c.model for c in chunks} == {model}
    first = next(c for c in chunks if c.choices)
    assert first.choices[0].delta.role == "assistant"
    assert _stream_text(chunks) == text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_int_openai_tools_round_trip(client: openai.OpenAI, model: str, stream: bool) -> None:
    messages: list[dict[str, Any]] = _user("What is the weather in Paris?")
    if stream:
        chunks = _collect(client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL],
                                                         stream=True))
        assert len({c.id for c in chunks}) == 1
        calls: dict[int, dict[str, str]] = {}
        for c in chunks:
            if not c.choices:
                continue
            for tc in c.choices[0].delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["tool_calls"]
        assert list(calls) == [0]
        call = calls[0]
    else:
        resp = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
        assert resp.choices[0].finish_reason == "tool_calls"
        tool_calls = resp.choices[0].message.tool_calls
        assert tool_calls is not None and len(tool_calls) == 1
        call = {"id": tool_calls[0].id, "name": tool_calls[0].function.name,
                "arguments": tool_calls[0].function.arguments}
    assert call["id"], "a tool call id"
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "sample"}

    messages = messages + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny and 21 degrees"},
    ]
    if stream:
        chunks = _collect(client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL],
                                                         stream=True))
        text = _stream_text(chunks)
    else:
        resp = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
        assert resp.choices[0].finish_reason == "stop"
        text = resp.choices[0].message.content
    assert "sunny and 21 degrees" in text
