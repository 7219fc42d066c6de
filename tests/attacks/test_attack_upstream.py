"""
Attack: a hostile or broken upstream (issue #15, items 5 and 12).

 - C{Retry-After: inf}, C{nan} or C{1e400} once ended a request in an HTML 500 after 30 s: now such values
   are ignored (the policy's backoff applies) and the client gets an error in its own dialect.
 - A token endpoint answering C{expires_in} <= 0 or NaN wedged the subaccount (-5) or made 2,500 fetches a
   second (0): now lifetimes are clamped with a warning, waiters are always released, fetches stay rare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile import hostile_harness  # noqa: E402
from sapproxy.config import RetryPolicy, ServiceKey  # noqa: E402
from sapproxy.dispatch.guards import retry_after_seconds  # noqa: E402
from sapproxy.upstreams.sap_aicore import MIN_LIFETIME, TokenCache, TokenGrant  # noqa: E402


@pytest.mark.parametrize("value", [b"inf", b"nan", b"1e400", b"-1", b"Wed, 21 Oct 2015 07:28:00 GMT", b"x" * 5000])
def test_hostile_retry_after_values_are_ignored(value: bytes) -> None:
    assert retry_after_seconds([value]) is None


def test_sane_retry_after_values_are_kept() -> None:
    assert retry_after_seconds([b"2"]) == 2.0 and retry_after_seconds([b" 0.5 "]) == 0.5


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-Infinity"])
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_429_with_hostile_retry_after_ends_in_the_clients_dialect(value: str, route: str) -> None:
    def answer(request: Any) -> bytes:
        request.setResponseCode(429)
        request.setHeader(b"retry-after", value.encode())
        request.setHeader(b"content-type", b"application/json")
        return b'{"error":{"message":"slow down","code":"429"}}'

    h, upstream = hostile_harness(answer, retry=RetryPolicy(attempts=3, max_wait=0.0, backoff=0.0))
    failures: list[Any] = []
    globalLogPublisher.addObserver(failures.append)
    try:
        response, raw = h.post(route, {"model": "gpt-4.1", "max_tokens": 5,
                                       "messages": [{"role": "user", "content": "hi"}]})
    finally:
        globalLogPublisher.removeObserver(failures.append)
    assert response.code == 429, raw
    body = json.loads(raw)
    if route == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    else:
        assert body["error"]["type"] == "rate_limit_error"
    assert response.headers.getRawHeaders(b"retry-after") is None
    assert upstream.calls == 3
    assert not [e for e in failures if e.get("log_failure") is not None]


class Endpoint:
    def __init__(self, expires_in: float) -> None:
        self.expires_in = expires_in
        self.fetches = 0

    def __call__(self, key: ServiceKey) -> Any:
        self.fetches += 1
        return succeed(TokenGrant(f"tok-{self.fetches}", self.expires_in))


@pytest.mark.parametrize("expires_in", [-5.0, 0.0, float("nan"), float("-inf"), 1.0])
def test_token_lifetimes_are_clamped_and_waiters_released(expires_in: float) -> None:
    clock = Clock()
    endpoint = Endpoint(expires_in)
    warnings: list[Any] = []
    globalLogPublisher.addObserver(warnings.append)
    try:
        cache = TokenCache("acct", ServiceKey("c", "s", "https://auth.example"), endpoint, clock)
        got = [cache.get() for _ in range(3)]
        assert all(d.called for d in got)
        assert [d.result for d in got] == ["tok-1"] * 3
        # Ten simulated minutes of a request every 10 ms.
        for _ in range(60_000):
            clock.advance(0.01)
            d = cache.get()
            assert d.called
    finally:
        globalLogPublisher.removeObserver(warnings.append)
    assert cache.state()["token"] == "valid"
    # At least MIN_LIFETIME / 4 between fetches (refresh ahead of a clamped lifetime), not one per request.
    assert endpoint.fetches <= 600 / (MIN_LIFETIME / 4) + 2, endpoint.fetches
    assert any("gave expires_in" in (e.get("log_format") or "") for e in warnings)


# --- items 12 and 14: bodies that break or never end -------------------------------------------------------

from hostile import ScriptedResponse, scripted_harness  # noqa: E402

CHAT_REPLY = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4.1",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
JSON = b"application/json"
SSE = b"text/event-stream"


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_whole_response_reset_mid_body_fails_over(route: str) -> None:
    h, upstream = scripted_harness([lambda: ScriptedResponse(200, JSON, [CHAT_REPLY[:20]], reset=True),
                                    lambda: ScriptedResponse(200, JSON, [CHAT_REPLY])])
    response, raw = h.post(route, {"model": "gpt-4.1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 200, raw
    assert len(upstream.calls) == 2 and upstream.calls[0] != upstream.calls[1]
    row = h.rows.rows[-1]
    assert (row.status, row.attempts, row.failovers) == (200, 2, 1)


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_whole_response_over_the_cap_is_a_clean_502(route: str) -> None:
    big = b'{"id":"' + b"x" * 5000 + b'"}'
    h, upstream = scripted_harness([lambda: ScriptedResponse(200, JSON, [big[:3000], big[3000:]])],
                                   max_response_bytes=4096)
    response, raw = h.post(route, {"model": "gpt-4.1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 502
    body = json.loads(raw)
    message = body["error"]["message"]
    assert "max_response_bytes" in message
    if route == "/v1/messages":
        assert body["type"] == "error"
    # Declared too large: refused without reading.
    h, upstream = scripted_harness([lambda: ScriptedResponse(200, JSON, [], length=10 ** 9)],
                                   max_response_bytes=4096)
    response, raw = h.post(route, {"model": "gpt-4.1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 502 and b"max_response_bytes" in raw


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_endless_sse_line_is_a_clean_502_not_a_memory_leak(route: str) -> None:
    from sapproxy.translate.framing.sse import MAX_EVENT_BYTES

    line = b"data: " + b"a" * (1 << 20)
    chunks = [line] + [b"a" * (1 << 20)] * (MAX_EVENT_BYTES // (1 << 20) + 2)
    made: list[ScriptedResponse] = []

    def endless() -> ScriptedResponse:
        made.append(ScriptedResponse(200, SSE, chunks))
        return made[-1]

    h, upstream = scripted_harness([endless])
    response, raw = h.post(route, {"model": "gpt-4.1", "max_tokens": 5, "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 502, raw[:300]
    body = json.loads(raw)
    assert "longer than" in (body["error"]["message"])
    assert all(r.stopped for r in made)  # every upstream was closed, not read on
    assert len(upstream.calls) == h.config.retry.attempts


def test_an_upstream_answer_of_the_wrong_shape_is_a_502_not_blamed_on_the_client() -> None:
    h, upstream = scripted_harness([lambda: ScriptedResponse(200, JSON, [b"[1, 2]"])])
    response, raw = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 5,
                                            "messages": [{"role": "user", "content": "hi"}]})
    assert response.code == 502 and json.loads(raw)["type"] == "error", raw


def test_a_failure_reading_an_upstream_answer_is_never_a_400() -> None:
    """
    The 400 for malformed client structure must not hide a failure in handling an upstream's answer.
    """
    import sapproxy.edge as edge

    try:
        raise TypeError("boom")
    except TypeError as e:
        error = e
    assert edge.malformed(error, "/v1/messages", "req_1", attempts=0).kind == "invalid_request"
    assert edge.malformed(error, "/v1/messages", "req_1", attempts=1).kind == "api_error"


def test_the_stream_event_cap_is_configurable() -> None:
    import sapproxy.translate.framing.sse as sse

    before = sse.MAX_EVENT_BYTES
    h, upstream = scripted_harness([lambda: ScriptedResponse(200, SSE, [b"data: " + b"a" * 9000])],
                                   max_stream_event_bytes=4096)
    sse.apply_stream_limits(h.config)
    try:
        response, raw = h.post("/v1/chat/completions", {"model": "gpt-4.1", "stream": True,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    finally:
        sse.MAX_EVENT_BYTES = before
    assert response.code == 502 and b"longer than 4096 bytes" in raw, raw


def test_an_answer_the_gateway_cannot_convert_is_its_own_500_with_the_attempt_in_the_usage_row() -> None:
    """
    A converter that breaks on an upstream's answer (here a chat completion whose choices are not a list, for an
    Anthropic client) is the gateway's failure, not the client's: a 500 in the client's dialect, the
    traceback logged once, and the usage row says the upstream was reached.
    """
    def answer(request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return b'{"id":"chatcmpl-1","object":"chat.completion","choices":5,"usage":{"prompt_tokens":3}}'

    h, upstream = hostile_harness(answer, retry=RetryPolicy(attempts=2, max_wait=0.0, backoff=0.0))
    events: list[Any] = []
    globalLogPublisher.addObserver(events.append)
    try:
        response, raw = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 5,
                                                "messages": [{"role": "user", "content": "hi"}]})
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert response.code == 500, raw
    body = json.loads(raw)
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "internal error in the gateway" in body["error"]["message"]
    assert upstream.calls == 1
    assert len([e for e in events if e.get("log_failure") is not None]) == 1
    row = h.rows.rows[-1]
    assert row.status == 500 and row.attempts == 1 and row.subaccount == "main" and row.error_type == "api_error"
