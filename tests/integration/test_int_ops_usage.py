"""
The operator's view of a running gateway: client keys made with C{sapproxy-admin}, per-key rate limits (in
process and shared through Redis), the usage rows every request leaves (SQLite and PostgreSQL), the protected
C{/metrics} exposition, and logs free of secrets.

Everything goes through real C{twistd} processes and the installed C{sapproxy-admin}, and asserts only what a
client or an operator sees: HTTP replies, the CLI's output, the usage table, the metrics text, the log files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import PG_BASE, need, postgres_schema
from daemon_harness import (
    BIN,
    SIM_CLIENT_ID,
    TOKEN,
    Gateway,
    RawStream,
    Reply,
    Stack,
    directive,
    gateway_config,
    http_request,
    running_stack,
    sse_data,
    sse_events,
    start_gateway,
    start_simulator,
    subaccount,
)

pytestmark = pytest.mark.integration

ADMIN = str(BIN / "sapproxy-admin")
METRICS_TOKEN = "mt-ops-" + uuid.uuid4().hex
CLIENT_SECRET = "cs-ops-" + uuid.uuid4().hex
REDIS_URL = "redis://127.0.0.1:6379/0"

GPT, CLAUDE, GEMINI = "gpt-4.1", "anthropic--claude-4.5-haiku", "gemini-2.5-flash"


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def admin(config: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    result = subprocess.run([ADMIN, "--config", str(config), *args], capture_output=True, text=True, timeout=30,
                            env=env, cwd=str(Path(config).parent))
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def create_key(config: Path | str, name: str, *extra: str) -> str:
    out = admin(config, "keys", "create", "--name", name, *extra).stdout
    keys = [line.strip() for line in out.splitlines() if line.strip().startswith("sk-sap-")]
    assert len(keys) == 1, out
    return keys[0]


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def chat_body(model: str, text: str = "ops", stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def messages_body(model: str, text: str = "ops", stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_key(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def poll(what: str, attempt: Callable[[], Reply], done: Callable[[Reply], bool], timeout: float = 6.0
         ) -> tuple[Reply, int, float]:
    """Repeat C{attempt} until C{done}; returns the last reply, how many attempts, and the seconds it took."""
    start = time.monotonic()
    n = 0
    while True:
        reply = attempt()
        n += 1
        if done(reply):
            return reply, n, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s; last {reply}")
        time.sleep(0.2)


def metrics_families(gw: Gateway) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    reply = http_request("GET", gw.base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert reply.status == 200, reply
    return {f.name: f for f in text_string_to_metric_families(reply.body.decode("utf-8"))}


def metric_sum(gw: Gateway, family: str, sample: str, **labels: str) -> float:
    fam = metrics_families(gw).get(family)
    if fam is None:
        return 0.0
    return sum(s.value for s in fam.samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def openai_error(reply: Reply, status: int, error_type: str) -> dict[str, Any]:
    assert reply.status == status, reply
    body = reply.json()
    assert set(body) == {"error"}, body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def anthropic_error(reply: Reply, status: int, error_type: str) -> dict[str, Any]:
    assert reply.status == status, reply
    body = reply.json()
    assert body.get("type") == "error", body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def reported_usage(path: str, reply: Reply, stream: bool) -> tuple[int, int]:
    """(prompt, completion) tokens as the client's response reported them."""
    assert reply.status == 200, reply
    if path == "/v1/chat/completions":
        if not stream:
            usage = reply.json()["usage"]
        else:
            chunks = [json.loads(d) for d in sse_data(reply.body) if d != "[DONE]"]
            with_usage = [c["usage"] for c in chunks if c.get("usage")]
            assert len(with_usage) == 1, chunks[-3:]
            usage = with_usage[0]
        return usage["prompt_tokens"], usage["completion_tokens"]
    if not stream:
        usage = reply.json()["usage"]
        return usage["input_tokens"], usage["output_tokens"]
    events = [(name, json.loads(data)) for name, data in sse_events(reply.body) if data]
    start = [d for n, d in events if n == "message_start"]
    delta = [d for n, d in events if n == "message_delta"]
    assert len(start) == 1 and len(delta) == 1, [n for n, _ in events]
    prompt = delta[0]["usage"].get("input_tokens") or start[0]["message"]["usage"]["input_tokens"]
    return prompt, delta[0]["usage"]["output_tokens"]


def send(gw: Gateway, path: str, model: str, stream: bool, headers: dict[str, str], text: str = "ops") -> Reply:
    body = chat_body(model, text, stream) if path == "/v1/chat/completions" else messages_body(model, text, stream)
    return gw.post(path, body, headers=headers)


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------------------------
# The SQLite stack shared by the operator story, the usage rows, the metrics and the log check.


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("ops")
    sim = start_simulator(directory, {"clientsecret": CLIENT_SECRET})
    try:
        config = gateway_config(directory, {"simulated": subaccount(sim, clientsecret=CLIENT_SECRET)},
                                metrics_token=METRICS_TOKEN)
        gateway = start_gateway(directory, config)
        try:
            yield Stack(sim, gateway)
        finally:
            gateway.daemon.stop()
    finally:
        sim.daemon.stop()


#: Secrets the stack's run used, gathered by the tests for the log check at the end.
SECRETS: dict[str, str] = {}


def test_int_ops_key_lifecycle_rate_limit_metrics_usage(stack: Stack) -> None:
    gw = stack.gateway
    cfg = gw.config_path
    before = metric_sum(gw, "sapproxy_requests", "sapproxy_requests_total")
    limited_before = metric_sum(gw, "sapproxy_rate_limited", "sapproxy_rate_limited_total", key_name="alice")

    key = create_key(cfg, "alice", "--rpm", "3")
    SECRETS["store key alice"] = key
    assert key.startswith("sk-sap-")
    sent = 0
    ok: list[Reply] = []

    # No restart: the key ring picks the key up within a few seconds.  401s meanwhile do not count against rpm.
    first, n, took = poll("new key accepted", lambda: send(gw, "/v1/chat/completions", GPT, False, bearer(key)),
                          lambda r: r.status != 401)
    sent += n
    assert first.status == 200, first
    assert took < 5.0
    ok.append(first)
    second = send(gw, "/v1/messages", CLAUDE, False, api_key(key))
    third = send(gw, "/v1/chat/completions", GEMINI, False, bearer(key))
    sent += 2
    assert second.status == 200 and third.status == 200, (second, third)
    assert second.json()["type"] == "message"
    ok += [second, third]

    # The 4th and 5th within the minute: 429 with Retry-After, in each caller's dialect.
    fourth = send(gw, "/v1/chat/completions", GPT, False, bearer(key))
    fifth = send(gw, "/v1/messages", CLAUDE, False, api_key(key))
    sent += 2
    error = openai_error(fourth, 429, "rate_limit_error")
    assert error["code"] == "rate_limit_exceeded"
    anthropic_error(fifth, 429, "rate_limit_error")
    for reply in (fourth, fifth):
        # A slot frees when the first request leaves the 60 s window, a few seconds ago.
        retry = int(reply.headers["retry-after"])
        assert 45 <= retry <= 60, reply.headers

    after = metric_sum(gw, "sapproxy_requests", "sapproxy_requests_total")
    assert after - before == sent
    assert metric_sum(gw, "sapproxy_requests", "sapproxy_requests_total", status="429") >= 2
    limited = metric_sum(gw, "sapproxy_rate_limited", "sapproxy_rate_limited_total", key_name="alice", reason="rpm")
    assert limited - limited_before == 2

    # Revocation takes effect without a restart.
    out = admin(cfg, "keys", "revoke", "alice").stdout
    assert "alice" in out and key not in out
    during: list[int] = []

    def attempt() -> Reply:
        reply = send(gw, "/v1/chat/completions", GPT, False, bearer(key))
        during.append(reply.status)
        return reply

    revoked, _, took = poll("revoked key refused", attempt, lambda r: r.status == 401)
    assert took < 5.0
    # Until the key ring's refresh the key is still alice's, and still over its limit.
    assert set(during[:-1]) <= {429}, during
    assert openai_error(revoked, 401, "authentication_error")["code"] == "invalid_api_key"
    anthropic_error(send(gw, "/v1/messages", CLAUDE, False, api_key(key)), 401, "authentication_error")
    listing = admin(cfg, "keys", "list").stdout
    assert "alice" in listing and key_id(key) in listing and key not in listing

    # Usage, as the operator reads it.
    tokens = [reported_usage(p, r, False) for p, r in
              zip(("/v1/chat/completions", "/v1/messages", "/v1/chat/completions"), ok)]
    refused = 2 + len(during) - 1
    gw.wait_usage_rows(3 + refused, "key_name = ?", ("alice",))
    by_key = json.loads(admin(cfg, "usage", "--by", "key", "--format", "json").stdout)
    alice = [g for g in by_key if g["key"] == "alice"]
    assert len(alice) == 1, by_key
    assert alice[0]["requests"] == 3 + refused  # 3 served, the 429s; the 401s never identified a key
    assert alice[0]["errors"] == refused
    assert alice[0]["prompt_tokens"] == sum(p for p, _ in tokens)
    assert alice[0]["completion_tokens"] == sum(c for _, c in tokens)

    raw_text = admin(cfg, "usage", "--raw", "--format", "json").stdout
    assert key not in raw_text
    rows = [r for r in json.loads(raw_text) if r["key_name"] == "alice"]
    assert len(rows) == 3 + refused
    assert {r["key_id"] for r in rows} == {key_id(key)}
    assert sorted(r["status"] for r in rows) == [200] * 3 + [429] * refused
    for r in rows:
        if r["status"] == 429:
            assert r["error_type"] == "rate_limit" and r["prompt_tokens"] == r["completion_tokens"] == 0, r
            assert r["attempts"] == 0 and r["deployment"] == "", r  # refused before any upstream call
        else:
            assert r["error_type"] is None and r["prompt_tokens"] > 0, r


def test_int_ops_key_model_allow_list(stack: Stack) -> None:
    gw = stack.gateway
    key = create_key(gw.config_path, "bob", "--models", GPT)
    SECRETS["store key bob"] = key
    reply, _, _ = poll("key accepted", lambda: send(gw, "/v1/chat/completions", GPT, False, bearer(key)),
                       lambda r: r.status != 401)
    assert reply.status == 200, reply
    error = openai_error(send(gw, "/v1/chat/completions", "gpt-5", False, bearer(key)), 403, "permission_error")
    assert error["code"] == "model_not_allowed"
    openai_error(send(gw, "/v1/chat/completions", CLAUDE, False, bearer(key)), 403, "permission_error")
    anthropic_error(send(gw, "/v1/messages", CLAUDE, False, api_key(key)), 403, "permission_error")
    # The allowed model still works on the other route and in the other header.
    assert send(gw, "/v1/messages", GPT, False, api_key(key)).status == 200
    models = gw.get("/v1/models", headers=bearer(key)).json()
    assert [m["id"] for m in models["data"]] == [GPT]


def test_int_ops_key_expiry_and_tpm(stack: Stack) -> None:
    gw = stack.gateway
    # --expires: the key works, then stops at its expiry without a revoke or a restart.
    created = time.monotonic()
    key = create_key(gw.config_path, "frank-expiring", "--expires", "4s")
    SECRETS["store key frank"] = key
    reply, _, _ = poll("key accepted", lambda: send(gw, "/v1/chat/completions", GPT, False, bearer(key)),
                       lambda r: r.status != 401)
    assert reply.status == 200, reply
    expired, _, _ = poll("expired key refused", lambda: send(gw, "/v1/messages", CLAUDE, False, api_key(key)),
                         lambda r: r.status == 401, timeout=8)
    anthropic_error(expired, 401, "authentication_error")
    assert time.monotonic() - created < 4 + 2.5

    # --tpm: requests pass while the key's tokens in the last minute are under the limit, then 429 (tpm).
    key = create_key(gw.config_path, "erin-tpm", "--tpm", "60")
    SECRETS["store key erin"] = key
    limited_before = metric_sum(gw, "sapproxy_rate_limited", "sapproxy_rate_limited_total", key_name="erin-tpm",
                                reason="tpm")
    spent = 0
    first, _, _ = poll("key accepted", lambda: send(gw, "/v1/chat/completions", GPT, False, bearer(key)),
                       lambda r: r.status != 401)
    replies = [first]
    while replies[-1].status == 200:
        assert spent < 60, f"allowed with {spent} tokens spent of 60"
        spent += sum(reported_usage("/v1/chat/completions", replies[-1], False))
        assert len(replies) < 30, "tpm never enforced"
        replies.append(send(gw, "/v1/chat/completions", GPT, False, bearer(key)))
    assert spent >= 60
    error = openai_error(replies[-1], 429, "rate_limit_error")
    assert "token" in error["message"], error
    assert 45 <= int(replies[-1].headers["retry-after"]) <= 60, replies[-1].headers
    anthropic_error(send(gw, "/v1/messages", CLAUDE, False, api_key(key)), 429, "rate_limit_error")
    limited = metric_sum(gw, "sapproxy_rate_limited", "sapproxy_rate_limited_total", key_name="erin-tpm",
                         reason="tpm")
    assert limited - limited_before == 2


MIXED = [(path, model, stream)
         for path in ("/v1/chat/completions", "/v1/messages")
         for model in (GPT, CLAUDE, GEMINI)
         for stream in (False, True)]


def test_int_ops_usage_row_per_request(stack: Stack) -> None:
    gw = stack.gateway
    sent: list[tuple[str, str, bool, Reply]] = []
    for i, (path, model, stream) in enumerate(MIXED):
        headers = bearer(TOKEN) if i % 2 else api_key(TOKEN)
        reply = send(gw, path, model, stream, {**headers, "User-Agent": f"ops-mixed/{i}"})
        assert reply.status == 200, (path, model, stream, reply)
        sent.append((path, model, stream, reply))
    ids = [reply.headers["x-request-id"] for *_, reply in sent]
    assert len(set(ids)) == len(ids)
    marks = ",".join("?" * len(ids))
    rows = gw.wait_usage_rows(len(ids), f"request_id IN ({marks})", tuple(ids))
    assert len(rows) == len(ids), rows
    by_id = {r["request_id"]: r for r in rows}
    assert len(by_id) == len(ids)  # exactly one row per request
    expected_deployment = {m: d for m, d in zip((GPT, CLAUDE, GEMINI), ("d-gpt41", "d-haiku", "d-gemini-flash"))}
    for i, (path, model, stream, reply) in enumerate(sent):
        row = by_id[reply.headers["x-request-id"]]
        prompt, completion = reported_usage(path, reply, stream)
        what = (path, model, stream, row)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion), what
        assert prompt > 0 and completion > 0, what
        assert bool(row["stream"]) is stream, what
        assert row["status"] == 200, what
        assert row["endpoint"] == path, what
        assert row["dialect"] == ("openai" if path == "/v1/chat/completions" else "anthropic"), what
        assert row["model_requested"] == model and row["model_resolved"] == model, what
        assert row["subaccount"] == "simulated", what
        assert expected_deployment[model] in row["deployment"], what
        assert row["key_name"] == "config#0" and row["key_id"] == key_id(TOKEN), what
        assert row["user_agent"] == f"ops-mixed/{i}", what
        assert not row["tokens_estimated"] and not row["client_hung_up"], what


def test_int_ops_metrics_protected_and_parseable(stack: Stack) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    gw = stack.gateway
    assert send(gw, "/v1/chat/completions", GPT, True, bearer(TOKEN)).status == 200
    assert send(gw, "/v1/messages", CLAUDE, False, bearer(TOKEN)).status == 200
    for headers in ({}, bearer(TOKEN), bearer(METRICS_TOKEN + "x"), {"Authorization": METRICS_TOKEN},
                    api_key(METRICS_TOKEN)):
        reply = http_request("GET", gw.base + "/metrics", headers=headers)
        assert reply.status == 401, (headers, reply)
        assert b"sapproxy_requests" not in reply.body
    reply = http_request("GET", gw.base + "/metrics", headers=bearer(METRICS_TOKEN))
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode("utf-8"))}

    tokens = families["sapproxy_tokens"]
    assert tokens.type == "counter"
    by = {(s.labels["model"], s.labels["direction"]): s.value for s in tokens.samples
          if s.name == "sapproxy_tokens_total"}
    for model in (GPT, CLAUDE):
        assert by.get((model, "prompt"), 0) > 0 and by.get((model, "completion"), 0) > 0, by

    ttfb = families["sapproxy_time_to_first_byte_seconds"]
    assert ttfb.type == "histogram"
    stream_counts = {s.labels["model"]: s.value for s in ttfb.samples
                     if s.name.endswith("_count") and s.labels.get("stream") == "true"}
    assert stream_counts.get(GPT, 0) >= 1, stream_counts
    buckets = [s for s in ttfb.samples if s.name.endswith("_bucket") and s.labels["model"] == GPT
               and s.labels["stream"] == "true"]
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == stream_counts[GPT]
    assert families["sapproxy_request_duration_seconds"].type == "histogram"
    active = families["sapproxy_active_streams"]
    assert active.type == "gauge" and [s.value for s in active.samples] == [0.0]  # every stream closed
    assert families["sapproxy_requests"].type == "counter"


def test_int_ops_metrics_labels_bounded(stack: Stack) -> None:
    gw = stack.gateway
    junk = [f"zz-client-text-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in junk:
        openai_error(send(gw, "/v1/chat/completions", name, False, bearer(TOKEN)), 404, "not_found_error")
        anthropic_error(send(gw, "/v1/messages", name, False, api_key(TOKEN)), 404, "not_found_error")
    exposition = http_request("GET", gw.base + "/metrics", headers=bearer(METRICS_TOKEN)).body.decode()
    assert "zz-client-text-" not in exposition
    # The refused requests are still counted, under a bounded label.
    assert metric_sum(gw, "sapproxy_requests", "sapproxy_requests_total", status="404") >= 6


def test_int_ops_no_secret_in_logs(stack: Stack) -> None:
    gw, sim = stack.gateway, stack.sim
    key = create_key(gw.config_path, "carol-logs")
    SECRETS["store key carol"] = key
    poll("key accepted", lambda: send(gw, "/v1/chat/completions", GPT, False, bearer(key)),
         lambda r: r.status == 200)
    # A spread of paths, including failures that tend to get logged: a wrong key, an upstream 500 and a
    # revoked upstream token (the gateway must fetch a new one with its client secret).
    wrong = "sk-sap-" + "W" * 40
    assert send(gw, "/v1/chat/completions", GPT, False, bearer(wrong)).status == 401
    assert send(gw, "/v1/messages", CLAUDE, True, api_key(key)).status == 200
    sim.arm("d-gpt41", "500")
    send(gw, "/v1/chat/completions", GPT, False, bearer(TOKEN))
    sim.arm("d-haiku", "401")
    send(gw, "/v1/messages", CLAUDE, False, api_key(TOKEN))
    assert send(gw, "/v1/chat/completions", GEMINI, True, bearer(key)).status == 200
    http_request("GET", gw.base + "/metrics", headers=bearer(METRICS_TOKEN))
    http_request("GET", gw.base + "/metrics", headers=bearer("mt-wrong-" + METRICS_TOKEN))

    secrets = {"config token": TOKEN, "wrong client key": wrong, "metrics token": METRICS_TOKEN,
               "clientsecret": CLIENT_SECRET,
               "basic credentials": base64.b64encode(f"{SIM_CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
               **SECRETS}
    issued = set()
    for r in sim.requests():
        auth = r["headers"].get("authorization", "")
        if auth.lower().startswith("bearer "):
            issued.add(auth[7:].strip())
    assert len(issued) >= 2, "the simulator should have issued a token, and a second one after the 401"
    for i, token in enumerate(sorted(issued)):
        secrets[f"XSUAA bearer token #{i}"] = token
    assert all(len(s) >= 12 for s in secrets.values()), secrets

    # What anyone (or any operator) can read: /health needs no key; the CLI's listings are for sharing.
    public = {
        "/health": http_request("GET", gw.base + "/health").body.decode(),
        "keys list": admin(gw.config_path, "keys", "list").stdout,
        "usage --raw": admin(gw.config_path, "usage", "--raw", "--format", "csv").stdout,
    }
    for name, text in public.items():
        leaked = [what for what, secret in secrets.items() if secret in text]
        assert not leaked, f"{name} shows {leaked}"

    time.sleep(1.5)  # let both daemons flush their logs
    for name, text in (("gateway", gw.log_text()), ("simulator", sim.daemon.log_text())):
        assert len(text) > 200, f"{name} log unexpectedly empty"
        leaked = [what for what, secret in secrets.items() if secret in text]
        assert not leaked, f"{name} log contains {leaked}"
    # Nor does the usage table hold a key.
    db_bytes = gw.usage_db.read_bytes() + (gw.usage_db.with_name(gw.usage_db.name + "-wal").read_bytes()
                                           if gw.usage_db.with_name(gw.usage_db.name + "-wal").exists() else b"")
    for what in ("config token", "store key carol", "wrong client key"):
        assert secrets[what].encode() not in db_bytes, what


def test_int_ops_usage_estimated_when_upstream_reports_none(stack: Stack) -> None:
    gw = stack.gateway
    text = "please estimate these words for me " + directive(no_usage=True, events=6)
    sent = [
        gw.post("/v1/chat/completions", chat_body(GPT, text), headers=bearer(TOKEN)),
        gw.post("/v1/chat/completions", chat_body(GPT, text, True), headers=bearer(TOKEN)),
        gw.post("/v1/messages", messages_body(CLAUDE, text), headers=api_key(TOKEN)),
        gw.post("/v1/messages", messages_body(CLAUDE, text, True), headers=api_key(TOKEN)),
    ]
    assert [r.status for r in sent] == [200] * 4, sent
    ids = tuple(r.headers["x-request-id"] for r in sent)
    rows = gw.wait_usage_rows(len(ids), f"request_id IN ({','.join('?' * len(ids))})", ids)
    assert len(rows) == len(ids)
    for row in rows:
        what = (row["endpoint"], row["model_requested"], row["stream"], row["prompt_tokens"],
                row["completion_tokens"])
        assert row["tokens_estimated"], what
        assert row["prompt_tokens"] > 0, what  # the prompt is known: counting.py estimates it offline
        assert row["completion_tokens"] > 0, what  # text was relayed to the client


def test_int_ops_revoking_last_key_keeps_auth_on(tmp_path: Path) -> None:
    with running_stack(tmp_path, secret_authentication_tokens=[]) as s:
        gw = s.gateway
        assert send(gw, "/v1/chat/completions", GPT, False, {}).status == 200  # documented: no keys, no auth
        key = create_key(gw.config_path, "only")
        poll("auth turned on by the first key", lambda: send(gw, "/v1/chat/completions", GPT, False, {}),
             lambda r: r.status == 401)
        assert send(gw, "/v1/chat/completions", GPT, False, bearer(key)).status == 200
        admin(gw.config_path, "keys", "revoke", "only")
        revoked, _, _ = poll("revoked key refused", lambda: send(gw, "/v1/chat/completions", GPT, False,
                                                                   bearer(key)),
                             lambda r: r.status != 200, timeout=4.5)
        openai_error(revoked, 401, "authentication_error")
        anthropic_error(send(gw, "/v1/messages", CLAUDE, False, {}), 401, "authentication_error")


# ----------------------------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with postgres_schema() as schema:
        yield schema


def pg_rows(schema: str, where: str = "TRUE", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(PG_BASE, row_factory=dict_row) as conn:
        try:
            return list(conn.execute(f'SELECT * FROM "{schema}".usage_records WHERE {where} ORDER BY id', params))
        except psycopg.errors.UndefinedTable:
            return []  # the gateway has not migrated the schema yet


def test_int_ops_postgresql_rows_survive_sigterm_mid_stream(tmp_path: Path, pg_schema: str) -> None:
    url = f"{PG_BASE}?options=-csearch_path%3D{pg_schema}"
    with running_stack(tmp_path, usage_store=url, drain_timeout=1.0) as s:
        gw = s.gateway
        # Keys live in the PostgreSQL schema too: made by the CLI, picked up by the running gateway.
        made = subprocess.run([ADMIN, "--store", url, "keys", "create", "--name", "pg-key"], capture_output=True,
                              text=True, timeout=30)
        assert made.returncode == 0, made.stderr
        pg_key = [line for line in made.stdout.splitlines() if line.startswith("sk-sap-")][0]
        plain, _, _ = poll("PostgreSQL key accepted",
                           lambda: send(gw, "/v1/chat/completions", GPT, False, bearer(pg_key)),
                           lambda r: r.status != 401)
        assert plain.status == 200, plain
        streamed = send(gw, "/v1/messages", CLAUDE, True, api_key(TOKEN))
        assert streamed.status == 200, streamed
        deadline = time.monotonic() + 10
        while len(pg_rows(pg_schema)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pg_rows(pg_schema)) == 2

        # A slow stream (20 events, 0.3 s apart), cut by SIGTERM after its first events.
        slow = RawStream(gw, "/v1/chat/completions",
                         {**chat_body(GPT, "slow " + directive(events=20, delay=0.3), True)})
        try:
            slow.read_until(b"data:", 2)
            rid = slow.request_id()
            gw.daemon.process.send_signal(signal.SIGTERM)
            tail = slow.drain()
            code = gw.daemon.process.wait(15)
        finally:
            slow.close()
        assert code in (0, -signal.SIGTERM), gw.log_text()[-3000:]  # twistd re-raises the signal it stopped on
    # The client was told, in its dialect, inside the stream.
    last = [json.loads(d) for d in sse_data(tail) if d.startswith("{")][-1]
    assert last["error"]["type"] == "service_unavailable", tail[-500:]
    assert sse_data(tail)[-1] == "[DONE]"

    rows = pg_rows(pg_schema)
    ids = {r["request_id"]: r for r in rows}
    assert plain.headers["x-request-id"] in ids and streamed.headers["x-request-id"] in ids
    assert ids[plain.headers["x-request-id"]]["key_name"] == "pg-key"
    assert ids[plain.headers["x-request-id"]]["key_id"] == key_id(pg_key)
    assert rid in ids, rows
    row = ids[rid]
    assert row["stream"] is True and row["model_requested"] == GPT and row["subaccount"] == "simulated"
    assert row["deployment"] == "d-gpt41" and row["error_type"] == "overloaded" and row["ttfb_ms"] is not None
    assert row["key_id"] == key_id(TOKEN)
    done = ids[streamed.headers["x-request-id"]]
    assert (done["prompt_tokens"], done["completion_tokens"]) == reported_usage("/v1/messages", streamed, True)
    # The key store lives in the same schema: the CLI reads these rows through the same URL.
    cli = subprocess.run([ADMIN, "--store", url, "usage", "--raw", "--format", "json"], capture_output=True,
                         text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    assert {r["request_id"] for r in json.loads(cli.stdout)} == set(ids)


def test_int_ops_usage_retention_prunes_old_rows(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "usage.db"
    store = f"sqlite:///{db}"
    result = subprocess.run([ADMIN, "--store", store, "usage"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr  # creates the schema
    now = time.time()
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(usage_records)") if r[1] != "id"]
    for rid, age_days in (("old-row", 45), ("recent-row", 5)):
        values: dict[str, Any] = {c: 0 for c in columns}
        values.update(time=now - age_days * 86400, request_id=rid, key_id="k", key_name="n", dialect="openai",
                      endpoint="/v1/chat/completions", model_requested=GPT, model_resolved=GPT, subaccount="s",
                      deployment="d", error_type=None, user_agent="ua", ttfb_ms=None)
        conn.execute(f"INSERT INTO usage_records ({','.join(values)}) VALUES ({','.join('?' * len(values))})",
                     tuple(values.values()))
    conn.commit()
    conn.close()

    with running_stack(tmp_path, usage_store=store, usage_retention_days=30) as s:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and s.gateway.usage_rows("request_id = 'old-row'"):
            time.sleep(0.1)
        assert not s.gateway.usage_rows("request_id = 'old-row'")
        assert len(s.gateway.usage_rows("request_id = 'recent-row'")) == 1
        message = "usage retention deleted 1 rows older than 30 days"
        deadline = time.monotonic() + 5
        while message not in s.gateway.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # logged once the delete has committed
        assert message in s.gateway.log_text()


def test_int_ops_no_anonymous_window_at_start(tmp_path: Path, pg_schema: str) -> None:
    from daemon_harness import TWISTD, Daemon, free_port

    url = f"{PG_BASE}?options=-csearch_path%3D{pg_schema}"
    sim = start_simulator(tmp_path)
    try:
        result = subprocess.run([ADMIN, "--store", url, "keys", "create", "--name", "existing"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        config = {**gateway_config(tmp_path, {"simulated": subaccount(sim)}, secret_authentication_tokens=[],
                                   usage_store=url), "port": free_port()}
        path = tmp_path / "gw-config.json"
        path.write_text(json.dumps(config))
        log = tmp_path / "gw.log"
        daemon = Daemon("gw", [TWISTD, "-n", "--pidfile=", f"--logfile={log}", "sapproxy", "--config", str(path)],
                        tmp_path, log)
        statuses: list[int] = []
        try:
            start = time.monotonic()
            while time.monotonic() - start < 8 and (len(statuses) < 40 or not statuses):
                try:
                    reply = http_request("POST", f"http://127.0.0.1:{config['port']}/v1/chat/completions",
                                         chat_body(GPT), timeout=2)
                    statuses.append(reply.status)
                except OSError:
                    time.sleep(0.01)
        finally:
            daemon.stop()
        assert statuses and set(statuses) == {401}, statuses
    finally:
        sim.daemon.stop()


# ----------------------------------------------------------------------------------------------------------------
# Redis: one limit across two gateways


def test_int_ops_redis_shared_rpm_across_two_gateways(tmp_path: Path) -> None:
    need(redis_up(), "Redis at 127.0.0.1:6379 unavailable")
    sim = start_simulator(tmp_path)
    gateways: list[Gateway] = []
    try:
        config = gateway_config(tmp_path, {"simulated": subaccount(sim)}, redis_url=REDIS_URL)
        gateways.append(start_gateway(tmp_path, config, name="gwA"))
        gateways.append(start_gateway(tmp_path, config, name="gwB"))
        key = create_key(gateways[0].config_path, "dave", "--rpm", "4")
        # Wait until both gateways know the key, with a request refused before the limiter (unknown model).
        for gw in gateways:
            reply, _, _ = poll("key known", lambda: gw.post("/v1/chat/completions", chat_body("no-such-model"),
                                                            headers=bearer(key)),
                               lambda r: r.status != 401)
            assert reply.status == 404, reply
        replies = [send(gateways[i % 2], "/v1/chat/completions", GPT, False, bearer(key)) for i in range(10)]
        statuses = [r.status for r in replies]
        assert statuses == [200] * 4 + [429] * 6, statuses
        refused = send(gateways[1], "/v1/messages", CLAUDE, False, api_key(key))
        anthropic_error(refused, 429, "rate_limit_error")
        assert 45 <= int(refused.headers["retry-after"]) <= 61, refused.headers
        assert openai_error(send(gateways[0], "/v1/chat/completions", GPT, False, bearer(key)), 429,
                            "rate_limit_error")["code"] == "rate_limit_exceeded"
        # tpm is shared too: tokens spent through one gateway count at the other.
        tkey = create_key(gateways[0].config_path, "dave-tpm", "--tpm", "40")
        for gw in gateways:
            poll("key known", lambda: gw.post("/v1/chat/completions", chat_body("no-such-model"),
                                              headers=bearer(tkey)), lambda r: r.status != 401)
        spent = 0
        while spent < 40:
            reply = send(gateways[0], "/v1/chat/completions", GPT, False, bearer(tkey))
            assert reply.status == 200, (spent, reply)
            spent += sum(reported_usage("/v1/chat/completions", reply, False))
        time.sleep(0.3)  # the charge is sent to Redis as the response ends
        error = openai_error(send(gateways[1], "/v1/chat/completions", GPT, False, bearer(tkey)), 429,
                             "rate_limit_error")
        assert "token" in error["message"], error
        # Another key is not affected by dave's limit.
        assert send(gateways[0], "/v1/chat/completions", GPT, False, bearer(TOKEN)).status == 200
        # Both gateways wrote their rows to the one shared store.
        ids = tuple(r.headers["x-request-id"] for r in replies)
        rows = gateways[0].wait_usage_rows(len(ids), f"request_id IN ({','.join('?' * len(ids))})", ids)
        assert sorted(r["status"] for r in rows) == sorted(statuses)
        assert {r["key_name"] for r in rows} == {"dave"}
        # The gateway's shutdown closes its Redis connection.
        gateways[0].daemon.stop()
        assert "rate limiter: closed the connection to Redis at 127.0.0.1:6379" in gateways[0].daemon.log_text()
    finally:
        for gw in gateways:
            gw.daemon.stop()
        sim.daemon.stop()
