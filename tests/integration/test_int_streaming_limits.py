"""
Streams at their limits, over real sockets against the real daemons: a client that stops reading (memory must
stay bounded: backpressure reaches the upstream), a client that hangs up (the upstream stream is cancelled and the
usage row says so), a cold start under 200 concurrent requests (one token fetch), an upstream that breaks
mid-stream (the client gets an error event in its dialect and a clean end), and one usage row per request.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from daemon_harness import RawStream as _RawStream
from daemon_harness import (
    TOKEN, Reply, Stack, directive, gateway_config, http_request, running, running_stack, sse_data, sse_events,
    start_gateway, start_simulator, subaccount,
)

pytestmark = pytest.mark.integration

#: Requests this module sent to the module's gateway that must each leave one usage row.
SENT: list[str] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A short idle timeout and keep-alive: the backpressure test also proves that a pause the client causes
    # never trips the idle timer, and the stall tests need it.
    with running_stack(tmp_path_factory.mktemp("streaming-limits"), timeouts={"idle": 2, "keepalive": 1}) as s:
        yield s


def _chat_body(text: str, model: str = "gpt-4.1", **extra: Any) -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": text}], **extra}


def _messages_body(text: str, model: str = "anthropic--claude-4.5-sonnet", **extra: Any) -> dict[str, Any]:
    return {"model": model, "stream": True, "max_tokens": 1024, "messages": [{"role": "user", "content": text}],
            **extra}


def _post(stack: Stack, path: str, body: Any) -> Reply:
    SENT.append(path)
    headers = {"x-api-key": TOKEN} if path.startswith("/v1/messages") else stack.gateway.headers()
    return stack.gateway.post(path, body, headers=headers, timeout=60)


class RawStream(_RawStream):
    """A raw streaming request, counted among this module's requests."""

    def __init__(self, stack: Stack, path: str, body: Any, **kw: Any) -> None:
        SENT.append(path)
        super().__init__(stack.gateway, path, body, **kw)


def _wait_for(check: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------------------
# (a) A client that stops reading: backpressure all the way to the upstream.

EVENTS = 50_000
EVENT_BYTES = 4096


def test_int_backpressure_bounds_memory(stack: Stack) -> None:
    # Warm up (imports, pools, token) so the baseline is the idle daemon, not a cold one.
    assert _post(stack, "/v1/chat/completions", _chat_body("warm up")).status == 200
    time.sleep(0.3)
    baseline = stack.gateway.rss_kib()
    sim_before = stack.sim.stats()["bytes_written"]

    big = RawStream(stack, "/v1/chat/completions",
                    _chat_body("big " + directive(events=EVENTS, event_bytes=EVENT_BYTES)))
    try:
        big.read_until(b"data: ", 20)
        samples: list[int] = []
        sim_written: list[int] = []
        # Stop reading for ten seconds; watch the gateway's memory and how far the upstream got.
        for _ in range(20):
            time.sleep(0.5)
            samples.append(stack.gateway.rss_kib())
            sim_written.append(stack.sim.stats()["bytes_written"] - sim_before)
        growth_mib = (max(samples) - baseline) / 1024
        print(f"\nbackpressure: baseline {baseline} KiB, RSS samples {samples}, simulator wrote {sim_written}")
        assert growth_mib < 60, f"gateway RSS grew {growth_mib:.1f} MiB over the idle baseline: {samples}"
        # The upstream was held back too: nowhere near the whole 200 MB was produced, and it stopped growing.
        total = EVENTS * EVENT_BYTES
        assert sim_written[-1] < total / 4, f"simulator wrote {sim_written[-1]} of {total} bytes"
        assert sim_written[-1] - sim_written[len(sim_written) // 2] < 8 * 1024 * 1024, sim_written
        assert stack.gateway.health()["active_streams"] == 1
        # Resume: the rest arrives and the stream ends properly.
        tail = big.drain()
    finally:
        big.close()
    assert big.total > total, f"only {big.total} bytes arrived"
    assert tail.rstrip(b"\r\n0").endswith(b"data: [DONE]"), tail[-200:]
    after = stack.sim.stats()
    assert after["bytes_written"] - sim_before >= total
    assert after["open_streams"] == 0


# ---------------------------------------------------------------------------------------------------------------
# (b) A client that hangs up: the upstream stream is cancelled, the usage row says the client left.


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", _chat_body("slow " + directive(events=2000, delay=0.05))),
    ("/v1/messages", _messages_body("slow " + directive(events=2000, delay=0.05))),
    ("/v1/chat/completions", _chat_body("slow " + directive(events=2000, delay=0.05), model="gemini-2.5-pro")),
    ("/v1/messages", _messages_body("slow " + directive(events=2000, delay=0.05),
                                    model="anthropic--claude-4.5-haiku")),
], ids=["openai-gpt", "anthropic-sonnet", "openai-gemini", "anthropic-haiku"])
def test_int_disconnect_cancels_upstream(stack: Stack, path: str, body: dict[str, Any]) -> None:
    assert _wait_for(lambda: stack.sim.stats()["open_streams"] == 0, 5)
    stream = RawStream(stack, path, body)
    try:
        stream.read_until(b"data: ", 4)
        assert stack.sim.stats()["open_streams"] == 1
        request_id = stream.request_id()
    finally:
        stream.close()
    closed_at = time.monotonic()
    assert _wait_for(lambda: stack.sim.stats()["open_streams"] == 0, 2.0), \
        "the upstream stream is still open 2 s after the client hung up"
    took = time.monotonic() - closed_at
    assert took < 2.0
    assert _wait_for(lambda: stack.gateway.health()["active_streams"] == 0, 2.0)
    rows = stack.gateway.wait_usage_rows(1, "request_id = ?", (request_id,))
    assert len(rows) == 1, f"no usage row for {request_id}"
    row = rows[0]
    assert row["client_hung_up"] == 1
    assert row["stream"] == 1
    assert row["ttfb_ms"] is not None



@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_int_hangup_before_upstream_headers_is_not_retried(stack: Stack, stream: bool) -> None:
    agent = f"hangup-before-headers-{stream}-{time.monotonic_ns()}"
    before = len(stack.sim.inference_requests())
    stack.sim.arm("d-gpt41", "slow_headers", 1, delay=2)
    try:
        raw = RawStream(stack, "/v1/chat/completions", _chat_body("hang up early", stream=stream), user_agent=agent)
        time.sleep(0.3)
        raw.close()
        time.sleep(2.5)  # the armed slow answer is over; any retry would have happened by now
    finally:
        stack.sim.clear_faults()
    upstream = stack.sim.inference_requests()[before:]
    rows = stack.gateway.wait_usage_rows(1, "user_agent = ?", (agent,))
    assert len(rows) == 1
    row = rows[0]
    assert (row["client_hung_up"], row["status"], row["attempts"]) == (1, 499, 1), row
    assert len(upstream) == 1, f"the gateway sent {len(upstream)} upstream requests for a client that hung up"
    assert stack.gateway.health()["circuit_breakers"] == {}


# ---------------------------------------------------------------------------------------------------------------
# An upstream that goes silent mid-stream: the idle timer (2 s here) ends it with an error in the client's dialect.


def test_int_stall_openai_stream_times_out(stack: Stack) -> None:
    started = time.monotonic()
    reply = _post(stack, "/v1/chat/completions",
                  _chat_body("stall " + directive(fault="stall_mid_stream", fault_after=3)))
    took = time.monotonic() - started
    assert 1.5 < took < 6, took
    data = sse_data(reply.body)
    assert data.count("[DONE]") == 1 and data[-1] == "[DONE]"
    last = json.loads(data[-2])
    assert last["error"]["type"] == "timeout" and "2 seconds" in last["error"]["message"]
    assert any(line.startswith(b":") for line in reply.body.split(b"\n")), "keep-alives are SSE comments"
    assert _wait_for(lambda: stack.sim.stats()["open_streams"] == 0, 2), "the stalled upstream is closed"


def test_int_stall_anthropic_stream_times_out(stack: Stack) -> None:
    reply = _post(stack, "/v1/messages", _messages_body("stall " + directive(fault="stall_mid_stream", fault_after=3)))
    events = sse_events(reply.body)
    names = [n for n, _ in events]
    assert names[-1] == "error" and names.count("error") == 1 and "message_stop" not in names
    assert "ping" in names, "keep-alives on an Anthropic stream are ping events"
    for name, data in events:
        assert json.loads(data)["type"] == name
    assert b"[DONE]" not in reply.body
    assert _wait_for(lambda: stack.sim.stats()["open_streams"] == 0, 2)


# ---------------------------------------------------------------------------------------------------------------
# (d) The upstream breaks mid-stream: what was sent stays, then an error in the client's dialect, then a clean end.


def _arm_reset(stack: Stack, deployment: str, after: int = 3) -> None:
    stack.sim.arm(deployment, "reset_mid_stream", 1, fault_after=after)


@pytest.mark.parametrize("model,deployment", [("gpt-4.1", "d-gpt41"), ("anthropic--claude-4.5-sonnet", "d-sonnet"),
                                              ("gemini-2.5-pro", "d-gemini")])
def test_int_midstream_reset_openai_stream(stack: Stack, model: str, deployment: str) -> None:
    _arm_reset(stack, deployment)
    try:
        reply = _post(stack, "/v1/chat/completions", _chat_body("break me", model=model))
    finally:
        stack.sim.clear_faults()
    assert reply.status == 200, reply
    data = sse_data(reply.body)
    assert data.count("[DONE]") == 1 and data[-1] == "[DONE]", data[-3:]
    chunks = [json.loads(d) for d in data[:-1]]
    errors = [c for c in chunks if "error" in c]
    assert len(errors) == 1, chunks
    assert chunks[-1] is errors[0], "the error chunk is the last before [DONE]"
    error = errors[0]["error"]
    assert error["message"] and error["type"]
    before = chunks[:-1]
    assert before, "the events before the break reached the client"
    assert all(c["object"] == "chat.completion.chunk" for c in before)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in before if c.get("choices"))
    assert text.startswith("Echo: break me") or text == "", text
    assert not any(c["choices"][0].get("finish_reason") for c in before if c.get("choices"))
    rows = stack.gateway.wait_usage_rows(1, "request_id = ?", (reply.headers["x-request-id"],))
    assert len(rows) == 1 and rows[0]["error_type"] is not None and rows[0]["client_hung_up"] == 0


@pytest.mark.parametrize("model,deployment", [("anthropic--claude-4.5-sonnet", "d-sonnet"),
                                              ("anthropic--claude-4.5-haiku", "d-haiku"), ("gpt-4.1", "d-gpt41"),
                                              ("gemini-2.5-pro", "d-gemini")])
def test_int_midstream_reset_anthropic_stream(stack: Stack, model: str, deployment: str) -> None:
    _arm_reset(stack, deployment)
    try:
        reply = _post(stack, "/v1/messages", _messages_body("break me", model=model))
    finally:
        stack.sim.clear_faults()
    assert reply.status == 200, reply
    assert b"[DONE]" not in reply.body
    events = [(name, json.loads(data)) for name, data in sse_events(reply.body) if name != "ping"]
    names = [name for name, _ in events]
    assert names[0] == "message_start", names
    assert names.count("error") == 1 and names[-1] == "error", names
    assert "message_stop" not in names
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] and error["error"]["message"]
    rows = stack.gateway.wait_usage_rows(1, "request_id = ?", (reply.headers["x-request-id"],))
    assert len(rows) == 1 and rows[0]["error_type"] is not None


def test_int_reset_before_first_byte_is_retried(stack: Stack) -> None:
    # Nothing reached the client yet: the gateway may try again, and the client sees a normal stream.
    _arm_reset(stack, "d-gpt41", after=0)
    try:
        reply = _post(stack, "/v1/chat/completions", _chat_body("retry me"))
    finally:
        stack.sim.clear_faults()
    assert reply.status == 200, reply
    data = sse_data(reply.body)
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    assert not any("error" in json.loads(d) for d in data[:-1])
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[:-1]
                   if json.loads(d).get("choices"))
    assert text.startswith("Echo: retry me")


# ---------------------------------------------------------------------------------------------------------------
# (e) Every request leaves exactly one usage row.


def test_int_one_usage_row_per_request(stack: Stack) -> None:
    # A few that fail at different stages too.
    assert _post(stack, "/v1/chat/completions", {"model": "no-such-model", "messages": []}).status == 404
    assert _post(stack, "/v1/chat/completions", {"model": "gpt-4.1", "messages": "nope"}).status == 400
    assert _post(stack, "/v1/messages", {"model": "anthropic--claude-4.5-haiku", "max_tokens": 8,
                                         "messages": [{"role": "user", "content": "whole"}]}).status == 200
    assert _wait_for(lambda: stack.gateway.health()["active_streams"] == 0, 5)
    expected = len(SENT)
    rows = stack.gateway.wait_usage_rows(expected)
    time.sleep(1.5)  # one more flush interval: nothing extra may turn up
    rows = stack.gateway.usage_rows()
    assert len(rows) == expected, [(r["endpoint"], r["model_requested"], r["status"]) for r in rows]
    assert len({r["request_id"] for r in rows}) == expected
    assert [r["endpoint"] for r in rows] == SENT


# ---------------------------------------------------------------------------------------------------------------
# (c) A cold start under load: 200 concurrent requests, one token fetch.


def test_int_single_flight_token_on_cold_start(tmp_path: Path) -> None:
    n = 200
    sim = start_simulator(tmp_path)
    try:
        # XSUAA is down for the gateway's start-up key check, so the cache is still cold when the load arrives.
        sim.arm("oauth/token", "token_down", 1)
        gateway = start_gateway(tmp_path, gateway_config(tmp_path, {"simulated": subaccount(sim)}))
    except BaseException:
        sim.daemon.stop()
        raise
    fresh = Stack(sim, gateway)
    with running(gateway, sim):
        deadline = time.monotonic() + 10
        while fresh.sim.stats()["token_requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fresh.sim.stats()["token_requests"] == 1
        time.sleep(1.5)  # past the subaccount's backoff after that failure
        barrier = threading.Barrier(n)
        results: list[Any] = [None] * n

        def one(i: int) -> None:
            body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": f"cold {i}"}],
                    "stream": bool(i % 2)}
            barrier.wait()
            try:
                results[i] = http_request("POST", fresh.base + "/v1/chat/completions", body,
                                          fresh.gateway.headers(), timeout=60)
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        failures = [r for r in results if not isinstance(r, Reply) or r.status != 200]
        assert not failures, failures[:3]
        stats = fresh.sim.stats()
        assert stats["token_requests"] == 2  # the failed start-up check, then one fetch for all 200
        assert stats["requests"]["/v2/inference/deployments/d-gpt41/chat/completions"] == n
        assert fresh.gateway.health()["subaccounts"]["simulated"]["fetches"] == 2
        rows = fresh.gateway.wait_usage_rows(n)
        assert len(rows) == n and all(r["status"] == 200 for r in rows)
