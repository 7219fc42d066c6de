"""
The long variant of the slow-header attack (issue #15, item 3) at the issue's full size: the real daemon,
C{--connections} sockets that each send a request line and then one byte every C{--every} seconds, while
normal clients keep sending requests.  Reports how many normal requests were served (and their latency),
how many attackers the gateway shed (closed to make room) or answered 408 at the head deadline, the
gateway's peak RSS and descriptors, and what its log says about accepting.

One process cannot hold 20,200 sockets here (the hard open-files limit is 20,000 and cannot be raised
without CAP_SYS_RESOURCE), so the attackers are split over C{--processes} child processes, each under its own
limit and each from its own source address (127.0.0.2, 127.0.0.3, ...: every address has its own ephemeral
ports), so all 20,200 connections really are attempted against the one gateway.  The short variants run in
the test command (tests/attacks/test_attack_daemon.py).

    .venv/bin/python bench/attack_connections.py --connections 20200 --processes 3 --duration 90
    .venv/bin/python bench/attack_connections.py --connections 1100 --gateway-nofile 1024   # systemd's limit
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from daemon_harness import gateway_config, start_gateway, start_simulator, subaccount  # noqa: E402

REQUEST_LINE = b"POST /v1/chat/completions HTTP/1.1\r\n"


def attacker(port: int, count: int, source: str, every: float, duration: float) -> dict[str, Any]:
    """
    In a child process: open C{count} connections from C{source}, send each a request line and then a byte
    every C{every} seconds until C{duration} seconds have passed; note how and when each one ended.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    selector = selectors.DefaultSelector()
    sockets: dict[int, socket.socket] = {}
    refused: dict[str, int] = {}
    ended: dict[int, tuple[str, float]] = {}  # index -> ("408" | "reset" | "eof", seconds since start)

    def end(i: int, how: str) -> None:
        if i in ended:
            return
        ended[i] = (how, time.monotonic() - started)
        s = sockets.pop(i)
        try:
            selector.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()

    def drain(timeout: float) -> None:
        for key, _ in selector.select(timeout=timeout):
            i = key.data
            try:
                data = key.fileobj.recv(4096)  # type: ignore[union-attr]
            except ConnectionResetError:
                end(i, "reset")
                continue
            except BlockingIOError:
                continue
            except OSError:
                end(i, "reset")
                continue
            end(i, "408" if data.startswith(b"HTTP/1.1 408") else "eof" if not data else "other")

    for i in range(count):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            s.sendall(REQUEST_LINE)
            s.setblocking(False)
        except OSError as e:
            name = type(e).__name__ if not e.errno else os.strerror(e.errno)
            refused[name] = refused.get(name, 0) + 1
            s.close()
            continue
        sockets[i] = s
        selector.register(s, selectors.EVENT_READ, i)
        if i % 200 == 0:
            drain(0)
    opened = count - sum(refused.values())
    opened_in = time.monotonic() - started
    next_byte = time.monotonic() + every
    while time.monotonic() - started < duration:
        drain(max(0.0, min(0.5, next_byte - time.monotonic())))
        if time.monotonic() >= next_byte:
            next_byte += every
            for i, s in list(sockets.items()):
                try:
                    s.send(b"X")
                except BlockingIOError:
                    pass
                except OSError:
                    end(i, "reset")
    drain(0)
    for s in sockets.values():
        s.close()
    return {"source": source, "attempted": count, "opened": opened, "opened_in": opened_in, "refused": refused,
            "still_open": len(sockets), "ended": [ended[i] for i in sorted(ended)],
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}


def normal_client(port: int, token: str, stop: threading.Event, out: dict[str, Any]) -> None:
    import http.client

    body = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]})
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v1/chat/completions", body=body,
                         headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            status = conn.getresponse().status
            conn.close()
        except OSError as e:
            out["errors"].append(f"{type(e).__name__}: {e}")
            status = None
        if status == 200:
            out["latencies"].append((time.monotonic() - t0) * 1000)
        elif status is not None:
            out["statuses"][status] = out["statuses"].get(status, 0) + 1
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def descriptors(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20200)
    parser.add_argument("--processes", type=int, default=3, help="attacker processes (each under its own limit)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between an attacker's bytes")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds the attack lasts")
    parser.add_argument("--headers-deadline", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=2, help="normal clients sending requests back to back")
    parser.add_argument("--gateway-nofile", type=int, default=None,
                        help="run the gateway with this open-files limit, soft and hard (systemd often gives 1024)")
    parser.add_argument("--attacker", help=argparse.SUPPRESS)  # internal: "port,count,source,report-file"
    args = parser.parse_args()
    if args.attacker:
        port, count, source, report = args.attacker.split(",")
        Path(report).write_text(json.dumps(attacker(int(port), int(count), source, args.every, args.duration)))
        return 0

    directory = Path(tempfile.mkdtemp(prefix="attack-conn-"))
    if args.gateway_nofile:
        import daemon_harness

        wrapper = directory / "twistd-limited"
        wrapper.write_text(f"#!/bin/sh\nexec prlimit --nofile={args.gateway_nofile}:{args.gateway_nofile} "
                           f"{daemon_harness.TWISTD} \"$@\"\n")
        wrapper.chmod(0o755)
        daemon_harness.TWISTD = str(wrapper)
    sim = start_simulator(directory)
    config = gateway_config(directory, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                            timeouts={"request_headers": args.headers_deadline})
    gw = start_gateway(directory, config)
    children: list[subprocess.Popen[bytes]] = []
    try:
        token = config["secret_authentication_tokens"][0]
        out: dict[str, Any] = {"latencies": [], "statuses": {}, "errors": []}
        stop = threading.Event()
        rss_before = gw.rss_kib()
        # A baseline before the attack, with the same clients.
        baseline: dict[str, Any] = {"latencies": [], "statuses": {}, "errors": []}
        threads = [threading.Thread(target=normal_client, args=(gw.port, token, stop, baseline))
                   for _ in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(5)
        stop.set()
        for t in threads:
            t.join()
        stop.clear()

        share = [args.connections // args.processes + (i < args.connections % args.processes)
                 for i in range(args.processes)]
        # Each from its own source address, so that no process runs short of ephemeral ports either.
        children[:] = [subprocess.Popen([sys.executable, __file__, "--attacker",
                                         f"{gw.port},{n},127.0.0.{i + 2},{directory / f'attacker-{i}.json'}",
                                         "--every", str(args.every), "--duration", str(args.duration)])
                       for i, n in enumerate(share)]
        started = time.monotonic()
        threads = [threading.Thread(target=normal_client, args=(gw.port, token, stop, out)) for _ in range(args.clients)]
        for t in threads:
            t.start()
        peak_rss = peak_fd = 0
        while any(c.poll() is None for c in children):
            peak_rss = max(peak_rss, gw.rss_kib())
            peak_fd = max(peak_fd, descriptors(gw.pid))
            time.sleep(0.5)
        attack_time = time.monotonic() - started
        stop.set()
        for t in threads:
            t.join()
        reports = [json.loads((directory / f"attacker-{i}.json").read_text()) for i in range(len(children))]
        return summary(args, gw, sim, reports, baseline, out, attack_time, rss_before, peak_rss, peak_fd)
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
        gw.daemon.stop()
        sim.daemon.stop()


def summary(args: Any, gw: Any, sim: Any, reports: list[dict[str, Any]], baseline: dict[str, Any],
            out: dict[str, Any], attack_time: float, rss_before: int, peak_rss: int, peak_fd: int) -> int:
    rss_after = gw.rss_kib()
    gw.daemon.stop()
    sim.daemon.stop()
    log = gw.log_text()

    attempted = sum(r["attempted"] for r in reports)
    opened = sum(r["opened"] for r in reports)
    refused: dict[str, int] = {}
    for r in reports:
        for k, v in r["refused"].items():
            refused[k] = refused.get(k, 0) + v
    ended = [e for r in reports for e in r["ended"]]
    by_how: dict[str, list[float]] = {}
    for how, when in ended:
        by_how.setdefault(how, []).append(when)
    lat = out["latencies"]
    said = [line.split(" ", 2)[-1][:200] for line in log.splitlines() if "open-files limit" in line]
    said += [line.split(" ", 2)[-1][:200] for line in log.splitlines() if "incomplete client connections" in line][-1:]
    print(f"gateway: open-files limit {args.gateway_nofile or 'its hard limit (raised at start)'}; its log: "
          + ("; ".join(said) or "nothing about descriptors"))
    print(f"before the attack: {len(baseline['latencies'])} normal responses in 5 s, p50 "
          f"{percentile(baseline['latencies'], 50):.1f} ms, p99 {percentile(baseline['latencies'], 99):.1f} ms")
    print(f"attack: {attempted:,} connections attempted from {len(reports)} processes "
          f"({', '.join(str(r['attempted']) for r in reports)}; attacker open-files limit {reports[0]['nofile']}), "
          f"{opened:,} opened (connect and request line), refused {refused or 0}; "
          f"opening took {max(r['opened_in'] for r in reports):.1f} s; attack lasted {attack_time:.0f} s, "
          f"one byte every {args.every:g} s; head deadline {args.headers_deadline:g} s")
    for how in sorted(by_how):
        times = sorted(by_how[how])
        print(f"  attackers ended by the gateway with {how}: {len(times):,} "
              f"(first at {times[0]:.1f} s, median {statistics.median(times):.1f} s, last at {times[-1]:.1f} s)")
    print(f"  attackers still open at the end: {sum(r['still_open'] for r in reports):,}")
    print(f"normal clients ({args.clients}, back to back) during the attack: {len(lat):,} responses 200, "
          f"other statuses {out['statuses'] or 0}, connection errors {len(out['errors'])}"
          + (f" (first: {out['errors'][0]})" if out["errors"] else "")
          + f"; latency p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
          f"max {max(lat) if lat else float('nan'):.1f} ms")
    print(f"gateway RSS: {rss_before / 1024:.0f} MiB before, peak {peak_rss / 1024:.0f} MiB, "
          f"{rss_after / 1024:.0f} MiB after; peak descriptors {peak_fd:,}")
    problems = [line for line in log.splitlines()
                if "Could not accept" in line or "EMFILE" in line or "Traceback" in line or "Unhandled" in line]
    print(f"gateway log: {len(log.splitlines()):,} lines, {len(problems)} about accept errors or tracebacks"
          + (f" (first: {problems[0][:200]})" if problems else ""))
    ok = not out["errors"] and not out["statuses"] and len(lat) > 0 and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
