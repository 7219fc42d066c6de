"""
The CPU cost of one plain (non-stream) request, as instructions, repeatable on a shared machine.

Starts the lean upstream (bench/upstream.py) and one gateway as bench/run.py does (sapproxy with run.py's
config: auth, token cache, two deployments, SQLite usage, metrics, request log; or the bare Klein+treq floor,
bench/bare_passthrough.py), the gateway under ``valgrind --tool=callgrind``, and sends plain
POST /v1/chat/completions requests to gpt-4.1 over K keep-alive connections (``--concurrency K``, default 1),
each a thread sending one request after another, so K are in flight at once as with wrk's K connections.  The
gateway runs twice, with W + N and with W + 2N requests (W warm-up requests, at least 2K, over the same
connections: the token fetch, the pools, lazy imports); the difference of the two runs' instruction counts over
N is the cost of one request, start-up and shut-down cancelling out.

    .venv/bin/python bench/plain_cost.py --target sapproxy|bare --requests N [--concurrency K] [--annotate 30]
        [--turns] [--cprofile 40] [--cache-sim]

``--annotate K`` prints the K C functions whose own (self) instruction count grew most per request (from
``callgrind_annotate`` of the two runs), and keeps the callgrind files in bench/results/plain-cost/.
``--turns`` also counts, without valgrind, the reactor turns (``doIteration`` calls), ``callLater`` calls and
Deferreds created per request, between two signals around the N requests (bench/experiments/turns/sitecustomize.py).
``--cprofile K`` runs the gateway once more under cProfile (no valgrind) and prints the K Python functions
with the most own time over the N requests, with their calls per request.  ``--turns`` also reports garbage
collections per request by generation, what they freed, and the main thread's CPU time in them and in all
(``gc_us``, ``cpu_us``: CPU time, so a hint on a shared machine, not a measure).  ``--cache-sim`` adds
callgrind's cache simulation: first- and last-level misses per request and callgrind's cycle estimate, for
costs that grow with the memory touched rather than with instructions.  ``--garbage`` lists what the N requests
left for the cyclic collector (reference cycles), by type, and which kinds of live object grew.

Only 127.0.0.1 is ever a target; ports are picked free.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/run.py: the same config, processes and helpers as the full benchmark)

PY = run.PY
TURNS = BENCH / "experiments" / "turns"
OUT = run.RESULTS / "plain-cost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, body: bytes, headers: dict[str, str], count: int, timeout: float) -> None:
    """C{count} plain requests, one after another on one keep-alive connection; each must answer 200."""
    with Clients(port, body, headers, 1, timeout) as clients:
        clients.send(count)


class Clients:
    """
    C{concurrency} keep-alive connections to the gateway, each in a thread of its own sending one request at a
    time, so that C{concurrency} requests are in flight at once (the gateway under callgrind is the slow side:
    the threads wait on it, not on each other).  The connections stay open from one L{send} to the next, so the
    warm-up and the measured requests go over the same connections, as wrk's do.
    """

    def __init__(self, port: int, body: bytes, headers: dict[str, str], concurrency: int, timeout: float) -> None:
        self.body = body
        self.headers = headers
        self.conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=timeout) for _ in range(concurrency)]

    def __enter__(self) -> "Clients":
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            conn.close()

    def _run(self, conn: http.client.HTTPConnection, count: int, errors: list[str]) -> None:
        try:
            for i in range(count):
                conn.request("POST", "/v1/chat/completions", body=self.body, headers=self.headers)
                r = conn.getresponse()
                data = r.read()
                if r.status != 200 or b'"choices"' not in data:
                    errors.append(f"request {i}: {r.status} {data[:300]!r}")
                    return
        except Exception as e:  # reported by send(), in the main thread
            errors.append(f"{type(e).__name__}: {e}")

    def send(self, count: int) -> None:
        """C{count} requests in all, spread as evenly as can be over the connections; each must answer 200."""
        if count <= 0:
            return
        k = len(self.conns)
        shares = [count // k + (1 if i < count % k else 0) for i in range(k)]
        if k == 1:
            errors: list[str] = []
            self._run(self.conns[0], count, errors)
        else:
            errors = []
            threads = [threading.Thread(target=self._run, args=(c, n, errors), daemon=True)
                       for c, n in zip(self.conns, shares)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errors:
            raise SystemExit(errors[0])


class Bench:
    #: What sends the requests (bench/stream_cost.py sends streams through a subclass).
    clients: type[Clients] = Clients

    def __init__(self, target: str, rundir: Path, concurrency: int = 1) -> None:
        self.target = target
        self.concurrency = concurrency
        self.rundir = rundir
        self.up_port = free_port()
        self.gw_port = free_port()
        run.PORTS["upstream"] = self.up_port
        run.PORTS["sapproxy"] = self.gw_port
        self.procs = run.Procs(rundir, {"gateway": None, "load": None})
        self.body = run.bodies(rundir)["plain"].read_bytes()
        self.headers = {"Content-Type": "application/json"}
        for h in run.auth_headers(target):
            k, _, v = h.partition(": ")
            self.headers[k] = v

    def start_upstream(self) -> None:
        up = self.procs.start("upstream", [PY, str(BENCH / "upstream.py"), "--port", str(self.up_port)], "load")
        if not run.wait_port(self.up_port, 30, up):
            raise SystemExit(f"upstream did not start; see {self.rundir / 'upstream.log'}")

    def gateway_argv(self, rundir: Path) -> list[str]:
        if self.target == "bare":
            return [PY, str(BENCH / "bare_passthrough.py"), "--port", str(self.gw_port),
                    "--upstream", f"http://127.0.0.1:{self.up_port}"]
        twistd = str(Path(PY).parent / "twistd")
        return [PY, twistd, "-n", "--pidfile=", "sapproxy", "--config", str(run.sapproxy_config(rundir))]

    def gateway_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": "AKIABENCHEXAMPLE", "AWS_SECRET_ACCESS_KEY": "bench/secret/EXAMPLE",
               "AWS_EC2_METADATA_DISABLED": "true", **(extra or {})}
        return run.checkout_env(env) if self.target == "sapproxy" else {
            **env, "PYTHONPATH": os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(run.ROOT)) if p)}

    def cprofile(self, rundir: Path, warm: int, count: int, top: int, what: str, unit: str) -> None:
        """
        Run the gateway once more under cProfile (no valgrind), C{warm} then C{count} requests, and print the
        C{top} Python functions by own time over the C{count}, with their calls and own microseconds per C{unit}.
        """
        import pstats

        stats = rundir / "cprofile.stats"
        self.one("cprofile", [], warm, count, env={"PYTHONPATH": str(TURNS), "SAPPROXY_CPROFILE_OUT": str(stats)},
                 mark=True)
        st = pstats.Stats(str(stats))
        rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
        print(f"Python functions by own time over {what}: calls/{unit}, own us/{unit}")
        for (file, line, fn), (cc, nc, tt, ct, _) in rows:
            short = "/".join(Path(file).parts[-2:])
            print(f"{nc / count:8.2f} {1e6 * tt / count:8.1f}  {short}:{line}({fn})")

    def one(self, name: str, prefix: list[str], warm: int, count: int, env: dict[str, str] | None = None,
            start_timeout: float = 600, mark: bool = False) -> None:
        """
        Start the gateway (under C{prefix}), send C{warm} then C{count} requests, stop it and wait.  With
        C{mark}, SIGUSR2 the gateway before and after the C{count} (bench/experiments/turns counts between).
        """
        rundir = self.rundir / name
        rundir.mkdir()
        self.procs.rundir = rundir
        p = self.procs.start(name, prefix + self.gateway_argv(rundir), "gateway", env=self.gateway_env(env))
        try:
            if not run.wait_port(self.gw_port, start_timeout, p):
                raise SystemExit(f"{self.target} did not start; see {rundir / (name + '.log')}")
            with self.clients(self.gw_port, self.body, self.headers, self.concurrency, timeout=300) as clients:
                if mark:
                    clients.send(warm)
                    os.kill(p.pid, signal.SIGUSR2)
                    time.sleep(1.0)
                    clients.send(count)
                    os.kill(p.pid, signal.SIGUSR2)
                    time.sleep(1.0)
                else:
                    clients.send(warm + count)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(600)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                raise SystemExit(f"{name} did not stop within 600 s")
        del self.procs.procs[name]

    def stop(self) -> None:
        self.procs.stop_all()


def callgrind_total(path: Path) -> int:
    return callgrind_events(path)["Ir"]


def callgrind_events(path: Path) -> dict[str, int]:
    """The whole run's count of every event callgrind recorded (C{Ir}; with the cache simulation, misses too)."""
    names: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            return dict(zip(names or ["Ir"], map(int, line.split()[1:])))
    raise SystemExit(f"no totals in {path}")


def self_costs(path: Path) -> dict[str, int]:
    """Own instruction counts per C function (callgrind_annotate, inclusive off)."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(path)], capture_output=True, text=True,
                         check=True).stdout
    costs: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not m or ":" not in m.group(2):
            continue
        name = re.sub(r"^.*/(?=[^/]*:)", "", m.group(2).split(" [")[0])  # file name, not the build's path
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def counters(path: Path) -> dict[str, int]:
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("sapproxy", "bare"), default="sapproxy")
    p.add_argument("--requests", "-n", type=int, default=200, help="N: the runs send W + N and W + 2N requests")
    p.add_argument("--warm", type=int, default=20, help="W: warm-up requests in every run (at least 2K)")
    p.add_argument("--concurrency", "-c", type=int, default=1, metavar="K",
                   help="K keep-alive connections, each with one request in flight (default 1)")
    p.add_argument("--annotate", type=int, default=0, metavar="K", help="top K C functions by own cost growth")
    p.add_argument("--turns", action="store_true", help="also count reactor turns etc. per request (no valgrind)")
    p.add_argument("--cprofile", type=int, default=0, metavar="K", help="also cProfile: top K Python functions")
    p.add_argument("--garbage", action="store_true",
                   help="also list what the N requests leave for the cyclic collector, by type (no valgrind)")
    p.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    p.add_argument("--cache-sim", action="store_true",
                   help="callgrind's cache simulation too: first-level and last-level misses per request, and "
                        "callgrind's cycle estimate (instructions + 10 x L1 misses + 100 x LL misses)")
    a = p.parse_args(argv)
    if not a.no_callgrind and not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix=f"plain-cost-{a.target}-c{a.concurrency}-", dir=run.RESULTS))
    if not 1 <= a.concurrency <= 512:
        raise SystemExit("--concurrency must be 1 to 512")
    a.warm = max(a.warm, 2 * a.concurrency)  # every connection (and upstream connection) made before the count
    b = Bench(a.target, rundir, a.concurrency)
    result: dict[str, Any] = {"target": a.target, "requests": a.requests, "warm": a.warm,
                              "concurrency": a.concurrency}
    n = a.requests
    try:
        b.start_upstream()
        if not a.no_callgrind:
            totals, events = {}, {}
            for k in (1, 2):
                out = rundir / f"callgrind.{k}n.out"
                b.one(f"cg{k}", ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}",
                                 *(["--cache-sim=yes"] if a.cache_sim else [])], a.warm, k * n)
                events[k] = callgrind_events(out)
                totals[k] = events[k]["Ir"]
                run.log(f"{a.target} c={a.concurrency}: W + {k}N = {a.warm + k * n} requests: "
                        f"{totals[k]:,} instructions")
            result["instructions_per_request"] = round((totals[2] - totals[1]) / n)
            result["instructions_w_n"] = totals[1]
            result["instructions_w_2n"] = totals[2]
            if a.cache_sim:
                each = {e: (events[2][e] - events[1][e]) / n for e in events[1]}
                l1 = each.get("I1mr", 0) + each.get("D1mr", 0) + each.get("D1mw", 0)
                ll = each.get("ILmr", 0) + each.get("DLmr", 0) + each.get("DLmw", 0)
                result["l1_misses_per_request"] = round(l1)
                result["ll_misses_per_request"] = round(ll)
                result["estimated_cycles_per_request"] = round(each["Ir"] + 10 * l1 + 100 * ll)
            if a.annotate:
                c1, c2 = self_costs(rundir / "callgrind.1n.out"), self_costs(rundir / "callgrind.2n.out")
                grow = sorted(((c2.get(f, 0) - c1.get(f, 0)) / n, f) for f in set(c1) | set(c2))[::-1]
                print(f"own instructions per request, top {a.annotate} C functions ({a.target}):")
                for per, f in grow[:a.annotate]:
                    print(f"{per:12,.0f}  {f}")
                OUT.mkdir(parents=True, exist_ok=True)
                for k in (1, 2):
                    shutil.copy(rundir / f"callgrind.{k}n.out",
                                OUT / f"callgrind.{a.target}.c{a.concurrency}.{k}n.out")
        if a.turns:
            path = rundir / "turns.json"
            b.one("turns", [], a.warm, n, env={"PYTHONPATH": str(TURNS), "SAPPROXY_TURNS_OUT": str(path),
                                               "SAPPROXY_GC_LOG": str(rundir / "gc.log")}, mark=True)
            got = counters(path)
            if not got:
                raise SystemExit(f"no counters written to {path}")
            result["per_request"] = {key: round(v / n, 2) for key, v in got.items()}
        if a.garbage:
            path = rundir / "garbage.txt"
            b.one("garbage", [], a.warm, n, env={"PYTHONPATH": str(TURNS), "SAPPROXY_GARBAGE_OUT": str(path)},
                  mark=True)
            if not path.exists():
                raise SystemExit(f"nothing written to {path}")
            print(f"left for the cyclic collector by {n} requests ({a.target}):")
            print("\n".join(path.read_text().splitlines()[:40]))
        if a.cprofile:
            b.cprofile(rundir, a.warm, n, a.cprofile, f"{n} requests ({a.target})", "request")
    finally:
        b.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
