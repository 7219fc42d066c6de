"""
What a client sees when SAP AI Core misbehaves, through the official SDKs: the upstream's own 4xx message in the
client's dialect, a 429 waited out, a revoked token replaced, an XSUAA outage as a 503, and a failed upstream error
event inside a stream.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import anthropic
import openai
import pytest
from daemon_harness import TOKEN, Stack, directive, running_stack, sse_data, sse_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("upstream-errors"), retry={"max_wait": 2, "backoff": 0.05}) as s:
        yield s


@pytest.fixture(autouse=True)
def _no_faults(stack: Stack) -> Iterator[None]:
    yield
    stack.sim.clear_faults()


@pytest.fixture(scope="module")
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base}/v1", api_key=TOKEN, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def ant(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base, api_key=TOKEN, max_retries=0, timeout=30)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_int_upstream_400_message_reaches_anthropic_client(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.create(model="anthropic--claude-4.5-sonnet", max_tokens=2048, messages=_user("x"),
                            thinking={"type": "enabled", "budget_tokens": 500})
    assert caught.value.status_code == 400
    assert "budget_tokens" in caught.value.message
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_int_upstream_400_message_reaches_openai_client(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="gpt-4.1", messages=[{"role": "tool", "content": "no id"}])
    assert caught.value.status_code == 400
    assert "tool_call_id" in caught.value.message


def test_int_429_is_waited_out(stack: Stack, oai: openai.OpenAI) -> None:
    stack.sim.arm("d-gpt41", "429", 1, retry_after=1)
    started = time.monotonic()
    resp = oai.chat.completions.create(model="gpt-4.1", messages=_user("patience"))
    assert resp.choices[0].message.content.startswith("Echo: patience")
    assert time.monotonic() - started >= 0.9, "Retry-After was honoured"


def test_int_persistent_429_reaches_client_with_retry_after(stack: Stack, ant: anthropic.Anthropic) -> None:
    stack.sim.arm("d-haiku", "429", 20, retry_after=1)
    with pytest.raises(anthropic.RateLimitError) as caught:
        ant.messages.create(model="anthropic--claude-4.5-haiku", max_tokens=64, messages=_user("x"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after") is not None
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_int_revoked_token_is_replaced(stack: Stack, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="gpt-4.1", messages=_user("first"))
    before = stack.sim.stats()["token_requests"]
    stack.sim.arm("d-gpt41", "401", 1)
    resp = oai.chat.completions.create(model="gpt-4.1", messages=_user("after revocation"))
    assert resp.choices[0].message.content.startswith("Echo: after revocation")
    assert stack.sim.stats()["token_requests"] == before + 1


def test_int_xsuaa_down_is_503_in_each_dialect(tmp_path: Any) -> None:
    with running_stack(tmp_path, retry={"max_wait": 1, "backoff": 0.01}) as fresh:
        fresh.sim.arm("oauth/token", "token_down", 50)
        # The token fetched at start is revoked, so a new one is needed while XSUAA is down.
        fresh.sim.arm("d-gpt41", "401", 1)
        reply = fresh.gateway.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": _user("x")})
        assert reply.status == 503, reply
        assert reply.json()["error"]["type"] == "service_unavailable"
        assert "sim-secret" not in reply.body.decode()
        reply = fresh.gateway.post("/v1/messages", {"model": "anthropic--claude-4.5-haiku", "max_tokens": 8,
                                                    "messages": _user("x")}, headers={"x-api-key": TOKEN})
        assert reply.status == 503, reply
        assert reply.json()["error"]["type"] == "overloaded_error"
        fresh.sim.clear_faults()
        # The subaccount backs off (about a second) before it asks XSUAA again.
        deadline = time.monotonic() + 10
        ok = fresh.gateway.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": _user("back")})
        while ok.status == 503 and time.monotonic() < deadline:
            time.sleep(0.3)
            ok = fresh.gateway.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": _user("back")})
        assert ok.status == 200, ok


@pytest.mark.parametrize("model", ["gpt-4.1", "anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-haiku",
                                   "gemini-2.5-pro"])
def test_int_upstream_error_event_mid_stream(stack: Stack, model: str) -> None:
    text = "oops " + directive(fault="error_mid_stream", fault_after=3)
    reply = stack.gateway.post("/v1/chat/completions", {"model": model, "stream": True, "messages": _user(text)})
    assert reply.status == 200
    data = sse_data(reply.body)
    assert data.count("[DONE]") == 1 and data[-1] == "[DONE]"
    assert "error" in json.loads(data[-2]), data[-2]
    assert sum("error" in json.loads(d) for d in data[:-1]) == 1

    reply = stack.gateway.post("/v1/messages", {"model": model, "stream": True, "max_tokens": 256,
                                                "messages": _user(text)}, headers={"x-api-key": TOKEN})
    assert reply.status == 200
    names = [n for n, _ in sse_events(reply.body) if n != "ping"]
    assert names[0] == "message_start" and names[-1] == "error" and names.count("error") == 1, names
    assert "message_stop" not in names and b"[DONE]" not in reply.body
