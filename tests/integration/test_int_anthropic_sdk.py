"""
The official C{anthropic} SDK against a real gateway daemon: Claude (Bedrock event-stream framing on sonnet, SSE
framing on haiku), GPT and Gemini, all as the Anthropic Messages API.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import anthropic
import pytest
from daemon_harness import TOKEN, Stack, running_stack, sse_events

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")]

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

MODELS = ["anthropic--claude-4.5-sonnet", "claude-sonnet-4-5-20250929", "anthropic--claude-4.5-haiku", "gpt-4.1",
          "gemini-2.5-pro"]
CLAUDE = ["anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-haiku"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("anthropic-sdk")) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base, api_key=TOKEN, max_retries=0, timeout=30)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _text(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


@pytest.mark.parametrize("model", MODELS)
def test_int_anthropic_create_and_stream(client: anthropic.Anthropic, model: str) -> None:
    whole = client.messages.create(model=model, max_tokens=512, messages=_user(f"say it {model}"))
    assert whole.type == "message" and whole.role == "assistant"
    assert whole.model == model
    text = _text(whole)
    assert text.startswith(f"Echo: say it {model}")
    assert whole.stop_reason == "end_turn"
    assert whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0

    with client.messages.stream(model=model, max_tokens=512, messages=_user(f"say it {model}")) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text
    assert _text(final) == text
    assert final.model == model
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_int_anthropic_tools_round_trip(client: anthropic.Anthropic, model: str, stream: bool) -> None:
    messages: list[dict[str, Any]] = _user("What is the weather in Paris?")
    if stream:
        with client.messages.stream(model=model, max_tokens=512, messages=messages, tools=[WEATHER_TOOL]) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=512, messages=messages, tools=[WEATHER_TOOL])
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather" and uses[0].input == {"city": "sample"} and uses[0].id

    messages = messages + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                      "content": "sunny and 21 degrees"}]},
    ]
    if stream:
        with client.messages.stream(model=model, max_tokens=512, messages=messages, tools=[WEATHER_TOOL]) as s:
            second = s.get_final_message()
    else:
        second = client.messages.create(model=model, max_tokens=512, messages=messages, tools=[WEATHER_TOOL])
    assert second.stop_reason == "end_turn"
    assert "sunny and 21 degrees" in _text(second)


def _simulator_thinking(stack: Stack, deployment: str, prompt: str) -> tuple[str, str]:
    """The thinking text and signature the simulator itself produces for C{prompt} (a direct call)."""
    reply = stack.sim.direct(deployment, "invoke", {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": _user(prompt),
    }, stack.sim.token())
    assert reply.status == 200, reply
    block = next(b for b in reply.json()["content"] if b["type"] == "thinking")
    return block["thinking"], block["signature"]


@pytest.mark.parametrize("model", CLAUDE)
@pytest.mark.parametrize("stream", [False, True])
def test_int_anthropic_thinking_signature_intact(stack: Stack, client: anthropic.Anthropic, model: str,
                                                 stream: bool) -> None:
    prompt = f"think about {model} {stream}"
    expected_text, expected_signature = _simulator_thinking(stack, "d-sonnet" if "sonnet" in model else "d-haiku",
                                                            prompt)
    # The signature is the simulator's documented deterministic HMAC of the thinking text.
    from sapproxy.simulator.textgen import thinking_signature

    assert expected_signature == thinking_signature(expected_text)
    kwargs: dict[str, Any] = dict(model=model, max_tokens=2048, messages=_user(prompt),
                                  thinking={"type": "enabled", "budget_tokens": 1024})
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    thinking = [b for b in message.content if b.type == "thinking"]
    assert len(thinking) == 1
    assert thinking[0].thinking == expected_text
    assert thinking[0].signature == expected_signature
    assert message.content[0].type == "thinking"
    assert _text(message).startswith(f"Echo: {prompt}")

    # Sending the thinking block back (as Claude Code does in a tool loop) is accepted upstream.
    follow = client.messages.create(model=model, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                    messages=_user(prompt) + [
                                        {"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                                          for b in message.content]},
                                        {"role": "user", "content": "and again"}])
    assert _text(follow).startswith("Echo: and again")


@pytest.mark.parametrize("model", ["anthropic--claude-4.5-sonnet", "gpt-4.1", "gemini-2.5-pro"])
def test_int_anthropic_count_tokens(client: anthropic.Anthropic, model: str) -> None:
    short = client.messages.count_tokens(model=model, messages=_user("hi"))
    longer = client.messages.count_tokens(model=model, messages=_user("hi " * 200), tools=[WEATHER_TOOL])
    assert short.input_tokens > 0
    assert longer.input_tokens > short.input_tokens


def test_int_anthropic_unknown_model_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-nonexistent-model", max_tokens=10, messages=_user("x"))
    assert caught.value.status_code == 404
    assert "claude-nonexistent-model" in caught.value.message
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error"
    assert body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("model", MODELS)
def test_int_anthropic_raw_stream_has_no_done(stack: Stack, model: str) -> None:
    reply = stack.gateway.post("/v1/messages", {"model": model, "max_tokens": 256, "stream": True,
                                                "messages": _user("raw events")},
                               headers={"x-api-key": TOKEN, "anthropic-version": "2023-06-01"})
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert b"[DONE]" not in reply.body
    events = sse_events(reply.body)
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("message_stop") == 1
    for name, data in events:
        assert json.loads(data)["type"] == name, "the event name matches the data's type"
