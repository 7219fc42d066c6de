"""
The CPU cost of one streaming request, as instructions, repeatable on a shared machine.

bench/plain_cost.py's method for streams, with its machinery (imported, not copied): the lean upstream
(bench/upstream.py) and one gateway as bench/run.py starts them (sapproxy with run.py's config, or the bare
Klein+treq floor), the gateway under ``valgrind --tool=callgrind``, W + N and W + 2N streaming requests of one
of run.py's stream cases (its body, ``#sim`` directive, client path and headers), one after another on one
keep-alive connection; the difference of the two runs' instruction counts over N is one stream, the whole
process: HTTP parse, auth, route, plan, the upstream request, reading and relaying the 50 events, the usage
row, metrics and logs.

    .venv/bin/python bench/stream_cost.py --target sapproxy|bare --case gpt_azure|claude_to_openai|... -n N
        [--annotate 30] [--cprofile 40] [--turns]

The bench upstream writes each stream's events at once, so the gateway gets them in a few socket reads (the
condition bench/run.py measures), not one read per event.  ``--annotate K``, ``--cprofile K`` and ``--turns``
are plain_cost.py's (per stream instead of per request).  ``--target bare`` runs only the GPT pass-through
cases (it relays OpenAI-compatible streams, nothing else).

Only 127.0.0.1 is ever a target; ports are picked free.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import plain_cost  # noqa: E402
import run  # noqa: E402

CASES = {c[0]: c for c in run.STREAM_CASES}


class StreamClients(plain_cost.Clients):
    """
    plain_cost's clients (Bench.one sends through them), sending streaming requests to C{path} and reading
    each stream to its end; each must answer 200 and carry C{expect} (the end of the stream in the client's
    format), so a refused or cut stream fails the run instead of counting as a cheap one.
    """

    path = "/v1/chat/completions"
    expect = b"[DONE]"

    def _run(self, conn: http.client.HTTPConnection, count: int, errors: list[str]) -> None:
        try:
            for i in range(count):
                conn.request("POST", self.path, body=self.body, headers=self.headers)
                r = conn.getresponse()
                data = r.read()
                if r.status != 200 or self.expect not in data:
                    errors.append(f"stream {i}: {r.status} {data[:300]!r} ... {data[-300:]!r}")
                    return
        except Exception as e:  # reported by send(), in the main thread
            errors.append(f"{type(e).__name__}: {e}")


class StreamBench(plain_cost.Bench):
    """plain_cost.Bench with one of run.py's stream cases' body, headers, path and end of stream."""

    def __init__(self, target: str, rundir: Path, case: str) -> None:
        super().__init__(target, rundir)
        key, _, _, path, anthropic, _, _ = CASES[case]
        self.body = run.bodies(rundir)[key].read_bytes()
        self.headers = {"Content-Type": "application/json"}
        for h in run.auth_headers(target, anthropic):
            k, _, v = h.partition(": ")
            self.headers[k] = v
        self.clients = type("CaseClients", (StreamClients,), {
            "path": path, "expect": b"message_stop" if anthropic else b"[DONE]"})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("sapproxy", "bare"), default="sapproxy")
    p.add_argument("--case", choices=sorted(CASES), default="gpt_azure")
    p.add_argument("--requests", "-n", type=int, default=100, help="N: the runs send W + N and W + 2N streams")
    p.add_argument("--warm", type=int, default=20, help="W: warm-up streams in every run")
    p.add_argument("--annotate", type=int, default=0, metavar="K", help="top K C functions by own cost growth")
    p.add_argument("--turns", action="store_true", help="also count reactor turns etc. per stream (no valgrind)")
    p.add_argument("--cprofile", type=int, default=0, metavar="K", help="also cProfile: top K Python functions")
    p.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    a = p.parse_args(argv)
    if a.target == "bare" and CASES[a.case][6] not in ("all", "floor"):
        raise SystemExit(f"bare does not run {a.case} (only the GPT pass-through cases)")
    if not a.no_callgrind and not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix=f"stream-cost-{a.target}-{a.case}-", dir=run.RESULTS))
    b = StreamBench(a.target, rundir, a.case)
    result: dict[str, Any] = {"target": a.target, "case": a.case, "streams": a.requests, "warm": a.warm}
    n = a.requests
    try:
        b.start_upstream()
        if not a.no_callgrind:
            totals = {}
            for k in (1, 2):
                out = rundir / f"callgrind.{k}n.out"
                b.one(f"cg{k}", ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}"],
                      a.warm, k * n)
                totals[k] = plain_cost.callgrind_total(out)
                run.log(f"{a.target} {a.case}: W + {k}N = {a.warm + k * n} streams: {totals[k]:,} instructions")
            result["instructions_per_stream"] = round((totals[2] - totals[1]) / n)
            result["instructions_w_n"] = totals[1]
            result["instructions_w_2n"] = totals[2]
            if a.annotate:
                c1 = plain_cost.self_costs(rundir / "callgrind.1n.out")
                c2 = plain_cost.self_costs(rundir / "callgrind.2n.out")
                grow = sorted(((c2.get(f, 0) - c1.get(f, 0)) / n, f) for f in set(c1) | set(c2))[::-1]
                print(f"own instructions per stream, top {a.annotate} C functions ({a.target}, {a.case}):")
                for per, f in grow[:a.annotate]:
                    print(f"{per:12,.0f}  {f}")
                out_dir = run.RESULTS / "stream-cost"
                out_dir.mkdir(parents=True, exist_ok=True)
                for k in (1, 2):
                    shutil.copy(rundir / f"callgrind.{k}n.out", out_dir / f"callgrind.{a.target}.{a.case}.{k}n.out")
        if a.turns:
            path = rundir / "turns.json"
            b.one("turns", [], a.warm, n, env={"PYTHONPATH": str(plain_cost.TURNS), "SAPPROXY_TURNS_OUT": str(path)},
                  mark=True)
            got = plain_cost.counters(path)
            if not got:
                raise SystemExit(f"no counters written to {path}")
            result["per_stream"] = {key: round(v / n, 2) for key, v in got.items()}
        if a.cprofile:
            b.cprofile(rundir, a.warm, n, a.cprofile, f"{n} streams ({a.target}, {a.case})", "stream")
    finally:
        b.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
