"""
Several sapproxy processes serving one port (``--reuse-port``, SO_REUSEPORT): plain req/s with one process and
with N, interleaved, medians of repeats.  Writes bench/results/scaling.md (and scaling.json).

    .venv/bin/python bench/scaling.py [--processes 2] [--repeats 3] [--duration 5] [--concurrency 64]

Each process is a whole gateway (its own usage database, token cache and metrics), started exactly as a user
would: ``twistd -n --pidfile= sapproxy --config ... --reuse-port``.  Nothing is pinned: the gateways may use
every core, and so do the upstream and wrk, whose CPU share is reported beside the figures, because on a small
machine that share is what the extra processes cannot have.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402  (bench/run.py: the same processes, bodies and load generator)
    BENCH, PORTS, PY, RESULTS, Load, Procs, auth_headers, bodies, checkout_env, cpu_seconds, ensure_wrk, log, machine,
    port_free, raise_nofile, sapproxy_config, wait_port,
)


def wait_listening(logfile: Path, proc: subprocess.Popen, timeout: float) -> bool:
    """A process sharing the port is ready when it says so (a connect may reach one of the others)."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        if logfile.exists() and b"listening on" in logfile.read_bytes():
            return True
        time.sleep(0.2)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    notes: list[str] = []
    raise_nofile()
    ensure_wrk(notes)
    for name in ("upstream", "sapproxy"):
        if not port_free(PORTS[name]):
            log(f"port {PORTS[name]} ({name}) is busy: stop whatever is there first")
            return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    rundir = RESULTS / ("scaling-" + time.strftime("%Y%m%d-%H%M%S"))
    rundir.mkdir()
    procs = Procs(rundir, {})
    load = Load(None, rundir)
    b = bodies(rundir)
    twistd = str(Path(PY).parent / "twistd")
    base = json.loads(sapproxy_config(rundir).read_text())
    counts = [1, a.processes]
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    try:
        procs.start("upstream", [PY, str(BENCH / "upstream.py"), "--port", str(PORTS["upstream"])], "load")
        if not wait_port(PORTS["upstream"], 30, procs.procs["upstream"]):
            log("the upstream did not start")
            return 1

        def start(i: int) -> subprocess.Popen:
            config = dict(base, usage_store="sqlite:///" + str(rundir / f"usage-{i}.db"))
            path = rundir / f"sapproxy-{i}.json"
            path.write_text(json.dumps(config, indent=2))
            name = f"sapproxy-{i}"
            (rundir / f"{name}.log").unlink(missing_ok=True)
            p = procs.start(name, [twistd, "-n", "--pidfile=", "sapproxy", "--config", str(path), "--reuse-port"],
                            "gateway", env=checkout_env())
            if not wait_listening(rundir / f"{name}.log", p, 30):
                raise RuntimeError(f"{name} did not start; see {rundir / (name + '.log')}")
            return p

        def stop(i: int) -> None:
            p = procs.procs.pop(f"sapproxy-{i}")
            os.killpg(p.pid, signal.SIGKILL)  # no drain needed: no request is in flight between points
            p.wait(10)

        def measure(n: int) -> dict[str, Any]:
            # Warm every process's token cache and pool: many short connections spread over the sockets.
            load.run(["plain", "--url", url, "--body-file", str(b["plain"]), "-c", "32", "-d", "1"] + auth, 60)
            gw = [procs.procs[f"sapproxy-{i}"].pid for i in range(n)]
            up = procs.procs["upstream"].pid
            cpu_gw, cpu_up, t0 = sum(map(cpu_seconds, gw)), cpu_seconds(up), time.time()
            r = load.run(["plain", "--url", url, "--body-file", str(b["plain"]), "-c", str(a.concurrency),
                          "-d", str(a.duration)] + auth, a.duration + 60)
            wall = max(time.time() - t0, 1e-6)
            r["gateway_cpu_pct"] = 100 * (sum(map(cpu_seconds, gw)) - cpu_gw) / wall
            r["upstream_cpu_pct"] = 100 * (cpu_seconds(up) - cpu_up) / wall
            log(f"  {n} process(es): {r.get('rps', float('nan')):,.1f} req/s, p50 {r.get('p50_ms', float('nan')):.2f} ms, "
                f"gateways {r['gateway_cpu_pct']:.0f}% CPU, upstream {r['upstream_cpu_pct']:.0f}% CPU, "
                f"errors {r.get('errors', r.get('error'))}")
            return r

        url = f"http://127.0.0.1:{PORTS['sapproxy']}/v1/chat/completions"
        auth = sum((["--header", h] for h in auth_headers("sapproxy")), [])
        start(0)
        for rep in range(a.repeats):
            log(f"repeat {rep + 1}/{a.repeats}")
            order = counts if rep % 2 == 0 else counts[::-1]
            for n in order:
                for i in range(1, a.processes):
                    running = f"sapproxy-{i}" in procs.procs
                    if n > 1 and not running:
                        start(i)
                    elif n == 1 and running:
                        stop(i)
                samples[n].append(measure(n))
    finally:
        procs.stop_all()

    def med(n: int, key: str) -> float:
        values = [s[key] for s in samples[n] if isinstance(s.get(key), (int, float))]
        return statistics.median(values) if values else float("nan")

    one = med(1, "rps")
    lines = [
        "# sapproxy: several processes on one port", "",
        f"{machine()}; `bench/scaling.py --processes {a.processes} --repeats {a.repeats} --duration {a.duration:g} "
        f"--concurrency {a.concurrency}`; plain non-stream POST /v1/chat/completions (gpt-4.1), "
        f"{samples[1][0].get('tool', '?')} at concurrency {a.concurrency}, keep-alive; medians of {a.repeats}; "
        "nothing pinned.", "",
        "| processes | req/s | vs 1 process | p50 ms | p99 ms | gateways CPU % | upstream CPU % | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in counts:
        lines.append(f"| {n} | {med(n, 'rps'):,.1f} | {med(n, 'rps') / one:.2f}x | {med(n, 'p50_ms'):.2f} | "
                     f"{med(n, 'p99_ms'):.2f} | {med(n, 'gateway_cpu_pct'):.0f} | {med(n, 'upstream_cpu_pct'):.0f} | "
                     f"{sum(int(s.get('errors') or 0) for s in samples[n])} |")
    cores = os.cpu_count() or 1
    lines += ["", f"CPU % is of one core; this machine has {cores}. The upstream and wrk run on the same cores, so "
              f"{a.processes} gateways can use at most what they leave: the ceiling is about "
              f"{cores * 100:.0f}% minus their share."]
    lines += [f"- {n}" for n in notes]
    (RESULTS / "scaling.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "scaling.json").write_text(json.dumps({str(k): v for k, v in samples.items()}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
