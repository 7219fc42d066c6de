"""
The long variant of the slow-header attack (issue #15, item 3): the real daemon, C{--connections} sockets that
each send a request line and then one byte every C{--every} seconds, while a normal client keeps sending
requests.  Reports how many normal requests were served (and their latency), and how many attackers the
gateway closed, and when.  The short variant runs in the test command (tests/attacks/test_attack_daemon.py).

    .venv/bin/python bench/attack_connections.py --connections 3000 --duration 75
    .venv/bin/python bench/attack_connections.py --connections 1100 --gateway-nofile 1024   # systemd's limit
"""

from __future__ import annotations

import argparse
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from daemon_harness import gateway_config, start_gateway, start_simulator, subaccount  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between an attacker's bytes")
    parser.add_argument("--duration", type=float, default=75.0)
    parser.add_argument("--headers-deadline", type=float, default=60.0)
    parser.add_argument("--gateway-nofile", type=int, default=None,
                        help="run the gateway with this open-files limit, soft and hard (systemd often gives 1024)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
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
    selector = selectors.DefaultSelector()
    attackers: list[socket.socket] = []
    refused = 0
    closed_at: dict[int, float] = {}
    started = time.monotonic()
    try:
        for _ in range(args.connections):
            try:
                s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
                s.setblocking(False)
                s.send(b"POST /v1/chat/completions HTTP/1.1\r\n")
                attackers.append(s)
                selector.register(s, selectors.EVENT_READ, len(attackers) - 1)
            except OSError:
                refused += 1
        opened = time.monotonic() - started
        latencies: list[float] = []
        failures = 0
        last_trickle = 0.0
        import http.client
        import json

        while time.monotonic() - started < args.duration:
            now = time.monotonic()
            if now - last_trickle >= args.every:
                last_trickle = now
                for i, s in enumerate(attackers):
                    if i not in closed_at:
                        try:
                            s.send(b"X")
                        except OSError:
                            closed_at[i] = now - started
            for key, _ in selector.select(timeout=0):
                i = key.data
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 408"):
                    closed_at.setdefault(i, time.monotonic() - started)
                    selector.unregister(key.fileobj)
            t0 = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
                conn.request("POST", "/v1/chat/completions", body=json.dumps(
                    {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}),
                    headers={"Authorization": "Bearer " + config["secret_authentication_tokens"][0],
                             "Content-Type": "application/json"})
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            if ok:
                latencies.append((time.monotonic() - t0) * 1000)
            else:
                failures += 1
            time.sleep(0.1)
        times = sorted(closed_at.values())
        print(f"attackers opened: {len(attackers):,} in {opened:.1f} s ({refused} refused); "
              f"open-files limit {soft}/{hard} for the attacker")
        print(f"normal requests during the attack: {len(latencies):,} served, {failures} failed; "
              f"latency p50 {statistics.median(latencies) if latencies else float('nan'):.1f} ms, "
              f"max {max(latencies) if latencies else float('nan'):.1f} ms")
        print(f"attackers closed by the gateway: {len(closed_at):,} of {len(attackers):,}"
              + (f", first at {times[0]:.1f} s, last at {times[-1]:.1f} s" if times else ""))
        return 0 if failures == 0 and len(closed_at) == len(attackers) else 1
    finally:
        for s in attackers:
            s.close()
        gw.daemon.stop()
        sim.daemon.stop()


if __name__ == "__main__":
    raise SystemExit(main())
