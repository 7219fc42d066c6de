"""
Bounded load generators.  Every loop is bounded in count and in time, and only 127.0.0.1 is ever a target.

  plain   : non-stream POSTs; uses wrk (with a Lua script for the body) when installed, else an asyncio
            keep-alive client over raw sockets.  Prints one JSON line: rps, p50/p99 latency (ms), errors.
  streams : SSE streams over keep-alive connections at a fixed concurrency, for a duration.  Prints one JSON
            line: streams/s, events/s, TTFB p50/p99, mean per-event gap, errors.
  hold    : opens N concurrent slow streams (ramped), prints "OPEN <n>" once all have sent their first byte,
            then waits for all to end and prints one JSON line.

    python bench/loadgen.py plain   --url http://127.0.0.1:3001/v1/chat/completions --body-file B -c 16 -d 5
    python bench/loadgen.py streams --url ... --body-file B -c 16 -d 5 [--header 'Authorization: Bearer x']
    python bench/loadgen.py hold    --url ... --body-file B -n 1000 --timeout 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

try:  # bench/run.py runs this on bench/.venv-load, which has uvloop: a third of asyncio's own loop's cost
    import uvloop

    _run = uvloop.run
    LOOP = "uvloop"
except ImportError:
    _run = asyncio.run
    LOOP = "asyncio"

MAX_DURATION = 120.0  # hard cap on any timed phase, seconds
MAX_STREAMS = 20000


def _check_local(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"refusing to load a non-loopback target: {url}")
    path = parts.path + (("?" + parts.query) if parts.query else "")
    return "127.0.0.1", parts.port or 80, path


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (1 << 17, 65536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
            return
        except (ValueError, OSError):
            continue


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def _request_bytes(host: str, port: int, path: str, body: bytes, headers: list[str], close: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]
    lines += headers
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------------------------- HTTP reading

class _Conn:
    """A keep-alive connection reading HTTP/1.1 responses (content-length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r = reader
        self.w = writer

    async def response(self, on_data=None) -> tuple[int, int, bool]:
        """Reads one response; calls on_data(bytes) per body piece. Returns (status, body bytes, keepalive)."""
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        keep = b"connection: close" not in lower
        total = 0
        if b"transfer-encoding: chunked" in lower:
            while True:
                line = await self.r.readuntil(b"\r\n")
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                data = await self.r.readexactly(size + 2)
                total += size
                if on_data is not None:
                    on_data(data[:-2])
        else:
            m = re.search(rb"content-length:\s*(\d+)", lower)
            if m:
                n = int(m.group(1))
                data = await self.r.readexactly(n) if n else b""
                total = n
                if on_data is not None and data:
                    on_data(data)
            else:  # read to close
                keep = False
                while True:
                    data = await self.r.read(65536)
                    if not data:
                        break
                    total += len(data)
                    if on_data is not None:
                        on_data(data)
        return status, total, keep


async def _open(host: str, port: int) -> _Conn:
    r, w = await asyncio.open_connection(host, port, limit=1 << 20)
    return _Conn(r, w)


# ---------------------------------------------------------------------------------------------- plain

def plain_wrk(url: str, body: bytes, headers: list[str], conc: int, duration: float) -> dict:
    lua = "wrk.method = \"POST\"\nwrk.body = %s\nwrk.headers[\"Content-Type\"] = \"application/json\"\n" % (
        json.dumps(body.decode()))
    for h in headers:
        k, _, v = h.partition(":")
        lua += "wrk.headers[%s] = %s\n" % (json.dumps(k.strip()), json.dumps(v.strip()))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    try:
        print("GO", flush=True)
        out = subprocess.run(["wrk", "-t1", f"-c{conc}", f"-d{max(1, int(round(duration)))}s", "--latency",
                              "--timeout", "10s", "-s", script, url],
                             capture_output=True, text=True, timeout=duration + 30).stdout
    finally:
        os.unlink(script)

    def ms(text: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", text)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    res: dict = {"tool": "wrk"}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([\d.]+(?:us|ms|s))", out)
        res[f"p{p}_ms"] = ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    res["errors"] = errors
    return res


async def plain_asyncio(url: str, body: bytes, headers: list[str], conc: int, duration: float) -> dict:
    host, port, path = _check_local(url)
    req = _request_bytes(host, port, path, body, headers)
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + min(duration, MAX_DURATION)

    async def worker() -> None:
        nonlocal errors
        conn = await _open(host, port)
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            conn.w.write(req)
            try:
                status, _, keep = await conn.response()
            except Exception:
                errors += 1
                conn = await _open(host, port)
                continue
            lat.append(time.perf_counter() - t0)
            if status >= 300:
                errors += 1
            if not keep:
                conn.w.close()
                conn = await _open(host, port)
        conn.w.close()

    print("GO", flush=True)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - t0
    return {"tool": "asyncio", "rps": len(lat) / elapsed, "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "requests": len(lat), "errors": errors}


# ---------------------------------------------------------------------------------------------- streams

class _StreamStats:
    def __init__(self) -> None:
        self.ttfb: list[float] = []
        self.gaps: list[float] = []
        self.events = 0
        self.streams = 0
        self.errors = 0
        self.error_samples: list[str] = []


class _StreamClient(asyncio.Protocol):
    """
    One keep-alive connection sending the same streaming request again and again until C{end}, parsing the
    HTTP/1.1 answers (chunked or content-length) straight from C{data_received}: one pass over each read, no
    await per chunk, so the client's own cost per stream stays far below any gateway's (the load side must not
    be what limits a gateway measured beside it).
    """

    def __init__(self, req: bytes, st: _StreamStats, end: float, done: asyncio.Future) -> None:
        self.req, self.st, self.end, self.done = req, st, end, done
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.head = True  # reading the head, else the body
        self.chunked = False
        self.need = 0  # content-length bytes left, or the current chunk's data plus its CRLF
        self.in_chunk = False
        self.status = 0
        self.keep = True
        self.events = 0
        self.started = self.first = self.last = 0.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self._send()

    def _send(self) -> None:
        if time.perf_counter() >= self.end:
            self._finish()
            return
        self._reset()
        self.started = time.perf_counter()
        self.timer = asyncio.get_running_loop().call_later(30, self._timed_out)
        assert self.transport is not None
        self.transport.write(self.req)

    def _timed_out(self) -> None:
        self._error("no complete answer in 30 s")
        self._finish()

    def _error(self, why: str) -> None:
        self.st.errors += 1
        if len(self.st.error_samples) < 3:
            self.st.error_samples.append(why[:200])

    def _finish(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self.started and time.perf_counter() < self.end:
                self._error(f"connection lost mid-answer: {exc!r}")
            self._finish()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while True:
            if self.head:
                i = buf.find(b"\r\n\r\n", pos)
                if i < 0:
                    break
                head = bytes(buf[pos:i]).lower()
                pos = i + 4
                self.head = False
                self.status = int(head[9:12])
                self.keep = b"connection: close" not in head
                self.chunked = b"transfer-encoding: chunked" in head
                if not self.chunked:
                    m = re.search(rb"content-length:\s*(\d+)", head)
                    self.need = int(m.group(1)) if m else 0
                    if not m:
                        self.keep = False
                continue
            if self.chunked:
                if not self.in_chunk:
                    i = buf.find(b"\r\n", pos)
                    if i < 0:
                        break
                    size = int(bytes(buf[pos:i]).split(b";", 1)[0], 16)
                    if size == 0:
                        if len(buf) - i < 4:  # the last chunk's CRLF CRLF is not all here: read it again later
                            break
                        pos = i + 4
                        self._answered()
                        continue
                    pos = i + 2
                    self.need, self.in_chunk = size + 2, True
                if len(buf) - pos < self.need:
                    break
                self._body(buf, pos, pos + self.need - 2)
                pos += self.need
                self.in_chunk = False
                continue
            if len(buf) - pos < self.need:
                break
            self._body(buf, pos, pos + self.need)
            pos += self.need
            self._answered()
        del buf[:pos]

    def _body(self, buf: bytearray, start: int, stop: int) -> None:
        if stop > start:
            now = time.perf_counter()
            if not self.first:
                self.first = now
            self.last = now
            self.events += buf.count(b"\n\n", start, stop)

    def _answered(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        st, n = self.st, self.events
        if self.status != 200 or n == 0:
            self._error(f"status {self.status}, {n} events")
        else:
            st.streams += 1
            st.events += n
            st.ttfb.append(self.first - self.started)
            if n > 1:
                st.gaps.append((self.last - self.first) / (n - 1))
        self.head = True
        if self.keep:
            self._send()
        else:
            self._finish()


async def streams(url: str, body: bytes, headers: list[str], conc: int, duration: float) -> dict:
    host, port, path = _check_local(url)
    req = _request_bytes(host, port, path, body, headers)
    st = _StreamStats()
    loop = asyncio.get_running_loop()
    end = time.perf_counter() + min(duration, MAX_DURATION)

    async def worker() -> None:
        while time.perf_counter() < end:  # a connection the server closed is replaced
            done = loop.create_future()
            try:
                await loop.create_connection(lambda: _StreamClient(req, st, end, done), host, port)
                await done
            except OSError as e:
                st.errors += 1
                if len(st.error_samples) < 3:
                    st.error_samples.append(repr(e)[:200])
                await asyncio.sleep(0.01)

    print("GO", flush=True)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - t0
    return {"streams_per_s": st.streams / elapsed, "events_per_s": st.events / elapsed, "streams": st.streams,
            "ttfb_p50_ms": pct(st.ttfb, 50) * 1000, "ttfb_p99_ms": pct(st.ttfb, 99) * 1000,
            "gap_mean_ms": (statistics.fmean(st.gaps) * 1000) if st.gaps else float("nan"),
            "events_per_stream": (st.events / st.streams) if st.streams else 0,
            "client_cpu_ms_per_stream": 1000 * (time.process_time() - cpu0) / max(st.streams, 1), "loop": LOOP,
            "errors": st.errors, "error_samples": st.error_samples}


async def hold(url: str, body: bytes, headers: list[str], n: int, timeout: float, ramp: int) -> dict:
    """n concurrent streams, each on its own connection; prints OPEN when every one has its first byte."""
    host, port, path = _check_local(url)
    n = min(n, MAX_STREAMS)
    req = _request_bytes(host, port, path, body, headers, close=True)
    opened = 0
    all_open = asyncio.Event()
    st = _StreamStats()
    errors: list[str] = []

    async def one() -> None:
        nonlocal opened
        counted = False
        try:
            conn = await _open(host, port)
            conn.w.write(req)
            t0 = time.perf_counter()

            def on_data(data: bytes) -> None:
                nonlocal opened, counted
                if not counted:
                    counted = True
                    opened += 1
                    st.ttfb.append(time.perf_counter() - t0)
                    if opened >= n:
                        all_open.set()
                st.events += data.count(b"\n\n")

            status, _, _ = await conn.response(on_data)
            conn.w.close()
            if status == 200:
                st.streams += 1
            else:
                st.errors += 1
        except Exception as e:
            st.errors += 1
            if len(errors) < 5:
                errors.append(repr(e)[:200])
        finally:
            if not counted:
                opened += 1  # failed before its first byte: do not wait for it
                if opened >= n:
                    all_open.set()

    t0 = time.perf_counter()
    tasks = []
    for i in range(0, n, ramp):
        for _ in range(min(ramp, n - i)):
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(all_open.wait(), timeout)
        open_s = time.perf_counter() - t0
        print(f"OPEN {n} {open_s:.2f} errors={st.errors}", flush=True)
    except asyncio.TimeoutError:
        print(f"OPEN-TIMEOUT {opened}", flush=True)
        open_s = float("nan")
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    return {"requested": n, "completed": st.streams, "errors": st.errors, "unfinished": len(pending),
            "open_seconds": open_s, "ttfb_p50_ms": pct(st.ttfb, 50) * 1000, "ttfb_p99_ms": pct(st.ttfb, 99) * 1000,
            "events": st.events, "error_samples": errors}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["plain", "streams", "hold"])
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=5.0)
    p.add_argument("-n", "--count", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--ramp", type=int, default=200, help="hold: streams opened per 50 ms")
    p.add_argument("--no-wrk", action="store_true")
    a = p.parse_args(argv)
    _check_local(a.url)
    _raise_nofile()
    body = open(a.body_file, "rb").read()
    duration = min(a.duration, MAX_DURATION)
    if a.mode == "plain":
        if shutil.which("wrk") and not a.no_wrk:
            res = plain_wrk(a.url, body, a.header, a.concurrency, duration)
        else:
            res = _run(plain_asyncio(a.url, body, a.header, a.concurrency, duration))
    elif a.mode == "streams":
        res = _run(streams(a.url, body, a.header, a.concurrency, duration))
    else:
        res = _run(hold(a.url, body, a.header, a.count, min(a.timeout, 600.0), a.ramp))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
