"""
A soak test for the gateway: a real simulator and a real gateway (the installed package, started by the
integration suite's harness), N mixed requests at a fixed concurrency with ~10 % injected upstream faults and
~5 % client hang-ups, then a check of what a long-running gateway must not do: proxy-caused 5xx, hung or
malformed streams, leaked upstream sockets, memory growth, missing usage rows, tracebacks.

    .venv/bin/python tests/soak/soak.py [--requests 20000] [--concurrency 64] [--seconds 900] [--seed 1]

Run ``.venv/bin/pip install .`` first: the daemons run the installed copy.

How faults are injected (two ways, so that both "the gateway must fail over" and "the gateway must pass the
upstream's error on" are exercised):

* Directive faults (``#sim{"fault": ...}`` in the user text) follow the request to *every* deployment, so no
  healthy deployment exists for that request; the gateway should give up after its retries and hand the
  client the upstream's error (or, mid-stream, an error event).  Such a 5xx is NOT proxy-caused -- unless its
  status is not the one the fault implies, or it is the gateway's own "internal error" 500.
* Armed faults (``POST /_sim/faults``, count 1) are set only on the ``-a`` deployment of a model; the ``-b``
  deployment (another subaccount) is never armed.  They are all faults that strike before the first byte
  reaches the client (429, 500, 503, reset before headers, reset/stall before the first event, slow headers),
  so a retry on ``-b`` is always possible.  Which concurrent request consumes an armed fault is up to the
  race, so the rule is stated per request: a request with no directive fault (or only ``slow_headers``,
  which is shorter than the headers timeout) always had a healthy deployment, hence

**Classification rule for "proxy-caused"**: a response is proxy-caused when
  (a) it is a 500 whose message is the gateway's own ``internal error in the gateway`` (always), or
  (b) it is a 5xx (or a stream that ends with an error event) for a request whose own fault, if any, is
      survivable (none / slow_headers) -- the fault came from an armed ``-a`` deployment while ``-b`` was
      healthy, or from nowhere, or
  (c) it is a 5xx that is not a JSON error in the client's dialect (e.g. twisted.web's HTML "Processing
      Failed" page: the gateway lost track of the request; counted as malformed too).
An upstream 503 (or 500, 429, or the gateway's 502/504 for resets/stalls) passed on after the retries is NOT
proxy-caused when the request's own directive fault struck every deployment.  Whether the status is the one
the directive implies (429 -> 429, 500 -> 500, 503 -> 503, reset -> 502, stall -> 504, error_mid_stream ->
500 or an error event) is reported as "status differs from the directive fault" for information only: an
armed fault on ``-a`` takes precedence over the directive there, so the last attempt may have failed
differently (or, after an armed slow_headers, succeeded).

Figures: hung streams (no end of the response within the per-request deadline), unterminated streams (the
connection closed without ``[DONE]``/``message_stop``/an error event), malformed SSE or JSON, upstream sockets
of the gateway beyond its idle pool after a few quiet seconds, RSS growth after the warm-up, usage rows per
request (matched by a per-request User-Agent), and ``Traceback`` lines in the gateway's log.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import daemon_harness as h  # noqa: E402

#: Models exercised, with the simulator kind behind each (two deployments each: -a and -b).
MODELS: dict[str, str] = {
    "gpt-4.1": "openai",
    "anthropic--claude-4.5-sonnet": "bedrock",
    "anthropic--claude-4.5-haiku": "bedrock",
    "gemini-2.5-flash": "vertex",
}
_DEPLOYMENT_BASE = {"gpt-4.1": "d-gpt41", "anthropic--claude-4.5-sonnet": "d-sonnet",
                    "anthropic--claude-4.5-haiku": "d-haiku", "gemini-2.5-flash": "d-gemini-flash"}

#: Faults a request may carry in its own text (they follow it to every deployment).
DIRECTIVE_FAULTS = ["429", "500", "503", "reset_before_headers", "reset_mid_stream", "stall_mid_stream",
                    "error_mid_stream", "slow_headers"]
#: Faults armed on a -a deployment: all strike before the client's first byte, so failover can hide them.
ARMED_FAULTS = ["429", "500", "503", "reset_before_headers", "reset_mid_stream", "stall_mid_stream",
                "slow_headers"]

POOL_SIZE = 32
TIMEOUTS = {"connect": 5.0, "headers": 10.0, "idle": 5.0, "keepalive": 2.0, "token": 10.0}
RETRY = {"attempts": 3, "max_wait": 1.0, "backoff": 0.05, "cooldown": 2.0, "breaker_failures": 3}
REQUEST_DEADLINE = 45.0  # seconds for one request; a stall ends after idle (5 s) x attempts
QUIET_SECONDS = 6.0

DIRECTIVE_RATE = 0.06
ARM_RATE = 0.04
HANGUP_RATE = 0.05


def sim_config() -> dict[str, Any]:
    deployments = {}
    for model, kind in MODELS.items():
        base = _DEPLOYMENT_BASE[model]
        extra = {"bedrock_stream_framing": "sse"} if model.endswith("haiku") else {}
        for suffix in ("a", "b"):
            deployments[f"{base}-{suffix}"] = {"kind": kind, "model": model, **extra}
    return {"deployments": deployments}


# ----------------------------------------------------------------------------------------------------------------
# The plan: every request decided up front from the seed.


@dataclass
class Plan:
    idx: int
    dialect: str  # "openai" | "anthropic"
    model: str
    stream: bool
    events: int
    fault: dict[str, Any] | None = None  # the directive's fault fields
    arm: dict[str, Any] | None = None  # armed just before this request is sent
    hangup: str | None = None  # "before" (close before the response) | "mid" (close after part of a stream)

    @property
    def fault_name(self) -> str | None:
        return self.fault["fault"] if self.fault else None


def make_plans(n: int, seed: int) -> list[Plan]:
    rng = random.Random(seed)
    plans = []
    models = list(MODELS)
    for i in range(n):
        dialect = rng.choice(["openai", "anthropic"])
        model = rng.choice(models)
        stream = rng.random() < 0.6
        plan = Plan(i, dialect, model, stream, events=rng.randint(2, 12))
        r = rng.random()
        if r < DIRECTIVE_RATE:
            fault = rng.choice(DIRECTIVE_FAULTS)
            if fault == "stall_mid_stream" and not stream:
                stream = plan.stream = True  # a stall on a whole response only measures the headers timeout
            d: dict[str, Any] = {"fault": fault}
            if fault == "429":
                d["retry_after"] = 0
            if fault in ("reset_mid_stream", "stall_mid_stream", "error_mid_stream"):
                d["fault_after"] = rng.randint(0, 4)
            if fault == "slow_headers":
                d["delay"] = 0.3
                plan.events = 3
            plan.fault = d
        elif r < DIRECTIVE_RATE + ARM_RATE:
            fault = rng.choice(ARMED_FAULTS)
            arm: dict[str, Any] = {"deployment": _DEPLOYMENT_BASE[rng.choice(models)] + "-a", "fault": fault,
                                   "count": 1, "retry_after": 0}
            if fault in ("reset_mid_stream", "stall_mid_stream"):
                arm["fault_after"] = 0
            if fault == "slow_headers":
                arm["delay"] = 0.3
            plan.arm = arm
        if rng.random() < HANGUP_RATE:
            plan.hangup = "mid" if stream and rng.random() < 0.6 else "before"
        plans.append(plan)
    return plans


def request_bytes(plan: Plan, port: int, tag: str) -> bytes:
    text = f"soak request {plan.idx}: say something."
    sim: dict[str, Any] = {"events": plan.events}
    if plan.fault:
        sim.update(plan.fault)
    text += " " + h.directive(**sim)
    messages = [{"role": "user", "content": text}]
    if plan.dialect == "openai":
        path = "/v1/chat/completions"
        body: dict[str, Any] = {"model": plan.model, "messages": messages, "max_tokens": 64}
        if plan.stream:
            body["stream"] = True
            if plan.idx % 2:
                body["stream_options"] = {"include_usage": True}
        auth = f"Authorization: Bearer {h.TOKEN}\r\n"
    else:
        path = "/v1/messages"
        body = {"model": plan.model, "messages": messages, "max_tokens": 64}
        if plan.stream:
            body["stream"] = True
        auth = f"x-api-key: {h.TOKEN}\r\nanthropic-version: 2023-06-01\r\n"
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nUser-Agent: soak/{tag}/{plan.idx}\r\nConnection: close\r\n\r\n")
    return head.encode() + payload


# ----------------------------------------------------------------------------------------------------------------
# The client: raw asyncio sockets, one connection per request.


@dataclass
class Outcome:
    plan: Plan
    kind: str = ""  # ok | http_error | stream_error | hung | unterminated | malformed | hangup | conn_error
    status: int | None = None
    detail: str = ""
    error_type: str | None = None
    message: str | None = None
    request_id: str | None = None
    got_status_line: bool = False
    elapsed: float = 0.0
    proxy_caused: bool = False
    status_mismatch: bool = False
    sample: bytes = b""


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise ValueError("truncated chunk size")
        size = int(data[pos:end].split(b";")[0].strip() or b"x", 16)
        pos = end + 2
        if size == 0:
            return bytes(out)
        if pos + size + 2 > len(data):
            raise ValueError("truncated chunk")
        out += data[pos:pos + size]
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        pos += size + 2


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def check_sse(dialect: str, body: bytes) -> tuple[str, str, dict[str, Any] | None]:
    """(kind, detail, error object) for a stream body: ok | stream_error | unterminated | malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "malformed", "not UTF-8", None
    text = text.replace("\r\n", "\n")
    if text and not text.endswith("\n\n"):
        return "unterminated", "body does not end with a blank line", None
    ended = False
    error: dict[str, Any] | None = None
    for block in text.split("\n\n"):
        if not block:
            continue
        name = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line.startswith(("id:", "retry:")):
                pass
            else:
                return "malformed", f"not an SSE line: {line[:120]!r}", None
        if name is None and not data:
            continue  # a comment-only block (keep-alive)
        payload = "\n".join(data)
        if ended:
            if dialect == "anthropic" and name == "ping":
                continue
            return "malformed", f"event after the end: {block[:120]!r}", None
        if dialect == "openai":
            if payload == "[DONE]":
                ended = True
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                return "malformed", f"data is not JSON: {payload[:120]!r}", None
            if not isinstance(obj, dict):
                return "malformed", f"data is not an object: {payload[:120]!r}", None
            if "error" in obj:
                # An error event ends the stream's content; a [DONE] may still follow it (the relay writes one).
                error = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
        else:
            try:
                obj = json.loads(payload)
            except ValueError:
                return "malformed", f"data is not JSON: {payload[:120]!r}", None
            if not isinstance(obj, dict) or "type" not in obj:
                return "malformed", f"event without a type: {payload[:120]!r}", None
            if name is not None and name != obj["type"]:
                return "malformed", f"event name {name!r} != data type {obj['type']!r}", None
            if obj["type"] == "message_stop":
                ended = True
            elif obj["type"] == "error":
                error = obj.get("error") or {}
                ended = True
    if not ended and error is None:
        return "unterminated", "no [DONE]/message_stop/error event before the connection closed", None
    if error is not None:
        return "stream_error", f"error event: {json.dumps(error)[:200]}", error
    return "ok", "", None


async def run_one(plan: Plan, port: int, tag: str, rng: random.Random) -> Outcome:
    out = Outcome(plan)
    started = time.monotonic()
    data = request_bytes(plan, port, tag)
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(data)
        await writer.drain()
        if plan.hangup == "before":
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            out.kind = "hangup"
            return out
        buf = bytearray()

        async def read_all() -> None:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buf.extend(chunk)
                if not out.got_status_line and b"\r\n" in buf:
                    out.got_status_line = True
                if plan.hangup == "mid":
                    head_end = buf.find(b"\r\n\r\n")
                    if head_end >= 0 and buf.count(b"data:", head_end) >= 2:
                        return

        try:
            await asyncio.wait_for(read_all(), REQUEST_DEADLINE)
        except asyncio.TimeoutError:
            out.kind = "hung"
            out.detail = f"no end after {REQUEST_DEADLINE} s; {len(buf)} bytes: {bytes(buf[-300:])!r}"
            out.sample = bytes(buf[-2000:])
            return out
        head, sep, rest = bytes(buf).partition(b"\r\n\r\n")
        if not sep:
            out.kind = "conn_error" if not buf else "malformed"
            out.detail = f"connection closed before a whole head: {bytes(buf[:200])!r}"
            return out
        status, headers = _parse_head(head)
        out.status = status
        out.request_id = headers.get("x-request-id")
        if plan.hangup == "mid":
            out.kind = "hangup"
            return out
        if headers.get("transfer-encoding", "").lower() == "chunked":
            try:
                body = _dechunk(rest)
            except ValueError as e:
                out.kind = "unterminated" if "text/event-stream" in headers.get("content-type", "") else "malformed"
                out.detail = f"bad chunked body: {e}; tail {rest[-200:]!r}"
                out.sample = rest[-2000:]
                return out
        else:
            length = headers.get("content-length")
            body = rest
            if length is not None and int(length) != len(rest):
                out.kind = "malformed"
                out.detail = f"content-length {length} but {len(rest)} bytes"
                return out
        out.sample = body[-2000:]
        if "text/event-stream" in headers.get("content-type", ""):
            kind, detail, error = check_sse(plan.dialect, body)
            out.kind, out.detail = kind, detail
            if error:
                out.error_type = error.get("type")
                out.message = error.get("message")
            if status != 200:
                out.kind, out.detail = "malformed", f"event stream with status {status}"
            return out
        try:
            obj = json.loads(body)
        except ValueError:
            out.kind, out.detail = "malformed", f"body not JSON: {body[:200]!r}"
            return out
        if status == 200:
            good = ("choices" in obj) if plan.dialect == "openai" else (obj.get("type") == "message")
            out.kind = "ok" if good else "malformed"
            if not good:
                out.detail = f"unexpected 200 body: {body[:200]!r}"
        else:
            err = obj.get("error") if isinstance(obj, dict) else None
            if not isinstance(err, dict):
                out.kind, out.detail = "malformed", f"error body without an error object: {body[:200]!r}"
            else:
                out.kind = "http_error"
                out.error_type, out.message = err.get("type"), err.get("message")
                out.detail = f"{status} {out.error_type}: {str(out.message)[:160]}"
        return out
    except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
        out.kind = "conn_error"
        out.detail = f"{type(e).__name__}: {e}"
        return out
    finally:
        out.elapsed = time.monotonic() - started
        if writer is not None:
            if plan.hangup:
                writer.transport.abort()
            else:
                writer.close()


#: What a directive fault turns into once every deployment has failed (None: a 200 with an error event,
#: or a whole 200 for the survivable slow_headers).
def expected_statuses(plan: Plan) -> set[int]:
    fault = plan.fault_name
    after = (plan.fault or {}).get("fault_after", 2)
    if fault is None or fault == "slow_headers":
        return {200}
    if fault == "429":
        return {429}
    if fault in ("500", "503"):
        return {int(fault)}
    if fault == "reset_before_headers":
        return {502}
    if fault == "reset_mid_stream":
        return {502} if (not plan.stream or after == 0) else {200, 502}
    if fault == "stall_mid_stream":
        return {504} if after == 0 else {200, 504}
    if fault == "error_mid_stream":
        return {500} if not plan.stream else {200, 500}
    return set()


def classify(out: Outcome) -> None:
    plan = out.plan
    survivable = plan.fault_name in (None, "slow_headers")
    if out.kind in ("http_error", "stream_error") and out.message and "internal error in the gateway" in out.message:
        out.proxy_caused = True
    elif out.kind == "malformed" and out.status is not None and out.status >= 500:
        out.proxy_caused = True  # not the upstream's error passed on: e.g. twisted.web's "Processing Failed" page
    elif out.kind == "http_error" and out.status is not None and out.status >= 500:
        out.proxy_caused = survivable
    elif out.kind == "stream_error":
        out.proxy_caused = survivable
    if out.kind in ("http_error", "stream_error", "ok") and not survivable and \
            (out.status if out.kind != "stream_error" else 200) not in expected_statuses(plan):
        # Informational only: an armed fault on -a wins over the request's own directive there, so the last
        # attempt's error (or even a success, after an armed slow_headers) may differ from the directive's.
        out.status_mismatch = True


# ----------------------------------------------------------------------------------------------------------------
# Gateway-side figures.


def _tcp_table(pid: int) -> list[tuple[int, int, int, int]]:
    """(inode, local port, remote port, state) of the IPv4/IPv6 TCP sockets in PID's network namespace."""
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, state, inode = parts[1], parts[2], int(parts[3], 16), int(parts[9])
                    rows.append((inode, int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state))
        except FileNotFoundError:
            pass
    return rows


def upstream_sockets(pid: int, upstream_port: int) -> int:
    """ESTABLISHED TCP connections owned by PID whose remote port is C{upstream_port}."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return sum(1 for inode, _, rport, state in _tcp_table(pid) if inode in inodes and rport == upstream_port
               and state == 1)


@dataclass
class SoakResult:
    requests_planned: int
    sent: int = 0
    seconds: float = 0.0
    counts: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    proxy_5xx: list[Outcome] = field(default_factory=list)
    proxy_stream_errors: list[Outcome] = field(default_factory=list)
    hung: list[Outcome] = field(default_factory=list)
    unterminated: list[Outcome] = field(default_factory=list)
    malformed: list[Outcome] = field(default_factory=list)
    conn_errors: list[Outcome] = field(default_factory=list)
    upstream_open: int = 0
    beyond_pool: int = 0
    sim_open_streams: int = 0
    rss_warm_kib: int = 0
    rss_end_kib: int = 0
    rss_samples: list[tuple[int, int]] = field(default_factory=list)  # (requests done, KiB)
    usage_rows: int = 0
    usage_expected: int = 0
    usage_missing: list[int] = field(default_factory=list)
    usage_duplicates: list[str] = field(default_factory=list)
    usage_unknown: int = 0
    hangups_with_row: int = 0
    tracebacks: int = 0
    status_mismatches: int = 0
    traceback_kinds: collections.Counter = field(default_factory=collections.Counter)
    traceback_excerpt: str = ""
    workdir: str = ""

    @property
    def rss_growth(self) -> float:
        return 100.0 * (self.rss_end_kib - self.rss_warm_kib) / self.rss_warm_kib if self.rss_warm_kib else 0.0

    def checks(self) -> list[tuple[str, str, bool]]:
        return [
            ("proxy-caused 5xx", str(len(self.proxy_5xx)), not self.proxy_5xx),
            ("proxy-caused in-stream errors (healthy deployment existed)", str(len(self.proxy_stream_errors)),
             not self.proxy_stream_errors),
            ("hung streams/requests (no end in %.0f s)" % REQUEST_DEADLINE, str(len(self.hung)), not self.hung),
            ("unterminated streams (closed without end marker)", str(len(self.unterminated)),
             not self.unterminated),
            ("malformed SSE / JSON", str(len(self.malformed)), not self.malformed),
            ("client connection errors (refused/reset by gateway)", str(len(self.conn_errors)),
             not self.conn_errors),
            (f"upstream sockets beyond idle pool ({self.upstream_open} open, pool {POOL_SIZE})",
             str(self.beyond_pool), self.beyond_pool == 0),
            ("simulator streams still open after quiet", str(self.sim_open_streams), self.sim_open_streams == 0),
            (f"RSS growth after warm-up ({self.rss_warm_kib} -> {self.rss_end_kib} KiB)",
             f"{self.rss_growth:+.1f} %", self.rss_growth < 5.0),
            (f"usage rows vs requests answered ({self.usage_rows} rows, {self.usage_expected} answered, "
             f"{len(self.usage_missing)} missing, {len(self.usage_duplicates)} duplicated, "
             f"{self.usage_unknown} unknown)",
             f"{self.usage_rows}/{self.usage_expected}",
             not self.usage_missing and not self.usage_duplicates and not self.usage_unknown),
            ("Traceback in gateway log", str(self.tracebacks), self.tracebacks == 0),
        ]

    @property
    def passed(self) -> bool:
        return all(ok for _, _, ok in self.checks())

    def table(self) -> str:
        lines = [f"Soak: {self.sent}/{self.requests_planned} requests in {self.seconds:.0f} s "
                 f"({self.sent / max(self.seconds, 1e-9):.0f} req/s); outcomes {dict(sorted(self.counts.items()))}; "
                 f"statuses {dict(sorted((str(k), v) for k, v in self.statuses.items()))}; "
                 f"client hang-ups with a usage row {self.hangups_with_row}; "
                 f"status differs from the directive fault (info) {self.status_mismatches}", "",
                 "| figure | value | result |", "|---|---|---|"]
        for name, value, ok in self.checks():
            lines.append(f"| {name} | {value} | {'PASS' if ok else 'FAIL'} |")
        lines.append(f"| **overall** | | **{'PASS' if self.passed else 'FAIL'}** |")
        return "\n".join(lines) + "\n"

    def examples(self, limit: int = 5) -> str:
        parts = []
        for title, items in (("proxy-caused 5xx", self.proxy_5xx), ("proxy-caused stream errors",
                             self.proxy_stream_errors), ("hung", self.hung), ("unterminated", self.unterminated),
                             ("malformed", self.malformed), ("connection errors", self.conn_errors)):
            if not items:
                continue
            by_shape = collections.Counter((o.plan.dialect, o.plan.model, o.plan.stream, o.plan.fault_name,
                                            o.status, (o.detail or "")[:90]) for o in items)
            parts.append(f"### {title}: {len(items)}")
            for shape, n in by_shape.most_common(limit):
                parts.append(f"- {n} x dialect={shape[0]} model={shape[1]} stream={shape[2]} fault={shape[3]} "
                             f"status={shape[4]} -- {shape[5]}")
            first = items[0]
            parts.append(f"- e.g. request #{first.plan.idx} id={first.request_id} fault={first.plan.fault} "
                         f"elapsed={first.elapsed:.1f}s detail={first.detail[:300]}")
        if self.rss_samples:
            parts.append("### gateway RSS (requests done: MiB): " + ", ".join(
                f"{n}: {kib / 1024:.1f}" for n, kib in self.rss_samples) + f", after quiet: {self.rss_end_kib / 1024:.1f}")
        if self.usage_missing:
            parts.append(f"### usage rows missing for answered requests: {self.usage_missing[:10]}")
        if self.usage_duplicates:
            parts.append(f"### duplicate usage rows: {self.usage_duplicates[:10]}")
        if self.traceback_kinds:
            parts.append("### tracebacks by exception: " + ", ".join(f"{k} x{v}" for k, v in
                                                                   self.traceback_kinds.most_common()))
        if self.traceback_excerpt:
            parts.append("### first traceback in the gateway log\n```\n" + self.traceback_excerpt + "\n```")
        return "\n".join(parts) + ("\n" if parts else "")


async def _drive(plans: list[Plan], stack: h.Stack, concurrency: int, seconds: float, warmup: int, tag: str,
                 seed: int, result: SoakResult) -> list[Outcome]:
    rng = random.Random(seed ^ 0x5A5A)
    loop = asyncio.get_running_loop()
    outcomes: list[Outcome] = []
    it = iter(plans)
    stop_at = time.monotonic() + seconds
    done = 0
    gateway = stack.gateway
    sample_every = max(len(plans) // 20, 1)

    async def arm(spec: dict[str, Any]) -> None:
        await loop.run_in_executor(None, lambda: stack.sim.control("POST", "/_sim/faults", spec))

    async def worker() -> None:
        nonlocal done
        for plan in it:
            if time.monotonic() > stop_at:
                return
            if plan.arm is not None:
                await arm(plan.arm)
            result.sent += 1
            out = await run_one(plan, gateway.port, tag, rng)
            classify(out)
            outcomes.append(out)
            done += 1
            if done == warmup:
                result.rss_warm_kib = gateway.rss_kib()
            if done % sample_every == 0:
                result.rss_samples.append((done, gateway.rss_kib()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def run_soak(requests: int = 20000, concurrency: int = 64, seconds: float = 900.0, seed: int = 1,
             warmup: int | None = None, workdir: Path | None = None, progress: bool = True) -> SoakResult:
    """Start the stack, drive it, measure, stop it; the figures in a L{SoakResult}."""
    # RSS settles only after a few thousand requests (allocator arenas, caches, pooled connections): judge
    # growth over the last three quarters of the run.
    warmup = warmup if warmup is not None else max(requests // 4, 1)
    result = SoakResult(requests)
    directory = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sapproxy-soak-"))
    result.workdir = str(directory)
    plans = make_plans(requests, seed)
    tag = f"{seed}"
    sim = h.start_simulator(directory, sim_config())
    try:
        accounts = {
            name: h.subaccount(sim, {m: f"{_DEPLOYMENT_BASE[m]}-{suffix}" for m in MODELS})
            for name, suffix in (("primary", "a"), ("secondary", "b"))
        }
        config = h.gateway_config(directory, accounts, timeouts=TIMEOUTS, retry=RETRY, pool_size=POOL_SIZE)
        gateway = h.start_gateway(directory, config)
        try:
            started = time.monotonic()
            outcomes = asyncio.run(_drive(plans, h.Stack(sim, gateway), concurrency, seconds, warmup, tag, seed,
                                          result))
            result.seconds = time.monotonic() - started
            if not result.rss_warm_kib:
                result.rss_warm_kib = gateway.rss_kib()
            sim.clear_faults()
            time.sleep(QUIET_SECONDS)
            result.rss_end_kib = gateway.rss_kib()
            result.upstream_open = upstream_sockets(gateway.pid, sim.port)
            result.beyond_pool = max(0, result.upstream_open - POOL_SIZE)
            result.sim_open_streams = int(sim.stats().get("open_streams", 0))
            for out in outcomes:
                result.status_mismatches += out.status_mismatch
                result.counts[out.kind] += 1
                if out.status is not None:
                    result.statuses[out.status] += 1
                if out.proxy_caused:
                    (result.proxy_stream_errors if out.kind == "stream_error" else result.proxy_5xx).append(out)
                {"hung": result.hung, "unterminated": result.unterminated, "malformed": result.malformed,
                 "conn_error": result.conn_errors}.get(out.kind, []).append(out)
            _check_usage(gateway, outcomes, tag, result)
            with open(directory / "outcomes.jsonl", "w") as f:
                for out in sorted(outcomes, key=lambda o: o.plan.idx):
                    f.write(json.dumps({"idx": out.plan.idx, "dialect": out.plan.dialect, "model": out.plan.model,
                                        "stream": out.plan.stream, "fault": out.plan.fault, "arm": out.plan.arm,
                                        "hangup": out.plan.hangup, "kind": out.kind, "status": out.status,
                                        "proxy_caused": out.proxy_caused, "request_id": out.request_id,
                                        "elapsed": round(out.elapsed, 3), "detail": out.detail,
                                        "sample": out.sample[-600:].decode("utf-8", "replace")
                                        if out.kind not in ("ok", "hangup") else ""}) + "\n")
            log = gateway_log(gateway)
            result.tracebacks = log.count("Traceback")
            for block in log.split("Traceback (most recent call last):")[1:]:
                # The exception line is the first tab-indented line that is not a frame (frames are "\t  ").
                exc = next((ln.strip() for ln in block.split("\n")[1:]
                            if ln.startswith("\t") and ln[1:2] not in (" ", "") and ln.strip()), "?")
                result.traceback_kinds[exc.split(":")[0]] += 1
            if result.tracebacks:
                at = log.find("Traceback")
                start = log.rfind("\n", 0, max(log.rfind("\n", 0, at), 0)) + 1  # the line logging it
                end = log.find("\n\t\n", at)
                result.traceback_excerpt = log[start:end if end > 0 else at + 2000][:3000]
        finally:
            gateway.daemon.stop()
    finally:
        sim.daemon.stop()
    return result


def gateway_log(gateway: h.Gateway) -> str:
    """The gateway's whole log: twistd rotates it every MB (gw.log.N, oldest highest), plus its stdout."""
    path = gateway.daemon.log_path
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in rotated if p.suffix[1:].isdigit())
    return text + gateway.log_text()


def _check_usage(gateway: h.Gateway, outcomes: list[Outcome], tag: str, result: SoakResult) -> None:
    answered = [o for o in outcomes if o.kind != "hangup" and o.got_status_line]
    result.usage_expected = len(answered)
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the store flushes every second: wait until the count settles
        rows = gateway.usage_rows()
        time.sleep(1.5)
        again = gateway.usage_rows()
        if len(again) == len(rows) and len(rows) >= len(answered):
            break
        rows = again
    result.usage_rows = len(rows)
    per_ua = collections.Counter(r["user_agent"] for r in rows)
    prefix = f"soak/{tag}/"
    result.usage_unknown = sum(n for ua, n in per_ua.items() if not ua.startswith(prefix))
    result.usage_duplicates = [ua for ua, n in per_ua.items() if n > 1]
    result.usage_missing = [o.plan.idx for o in answered if per_ua.get(f"{prefix}{o.plan.idx}", 0) == 0]
    result.hangups_with_row = sum(1 for o in outcomes if o.kind == "hangup" and per_ua.get(f"{prefix}{o.plan.idx}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    result = run_soak(args.requests, args.concurrency, args.seconds, args.seed, args.warmup, args.workdir)
    report = (f"# sapproxy soak ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"--requests {args.requests} --concurrency {args.concurrency} --seed {args.seed})\n\n"
              + result.table() + "\n" + result.examples() + f"\nWork directory (logs, usage DB): {result.workdir}\n")
    print(report)
    args.results.write_text(report)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
