"""
The CPU cost of the upstream half of one plain request, as instructions: from "the plan has chosen a target"
to "the upstream's whole response is the bytes the client gets" (issue #18, the upcpu task).

In one process, without a site, a route or accounting: the gateway that bench/run.py's config builds
(L{sapproxy.service.GatewayService}, so the same pool, providers, picker and planner), its
L{Gateway.forward} called for a plain POST /v1/chat/completions to gpt-4.1 (GPT pass-through, two
Azure-style SAP deployments on bench/upstream.py, which runs in a process of its own and is not counted),
and the answer turned into the client's body as the route does (L{sapproxy.web.frame.json_body}'s
encoding).  Requests go one after another (c=1), over the pool's keep-alive connections.

Under callgrind, run twice (W + N and W + 2N calls); the difference over N is the cost of one call:

    .venv/bin/python bench/experiments/upstream_half.py --requests 500     # prints instructions per call
    .venv/bin/python bench/experiments/upstream_half.py --requests 500 --no-callgrind --cprofile 40
    UPSTREAM_HALF_RAW=1 .venv/bin/python bench/experiments/upstream_half.py --requests 500   # the HTTP exchange only

Only 127.0.0.1 is ever a target; ports are picked free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

BODY = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 64}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_for(up: int, rundir: Path) -> Path:
    base = f"http://127.0.0.1:{up}"
    dep = base + "/v2/inference/deployments/"
    config = {
        "subAccounts": {"bench": {
            "resource_group": "default",
            "service_key_json": {"clientid": "bench-client", "clientsecret": "bench-secret", "url": base,
                                 "serviceurls": {"AI_API_URL": base}},
            "deployment_models": {"gpt-4.1": [dep + "d-gpt41-a", dep + "d-gpt41-b"]},
        }},
        "secret_authentication_tokens": ["sk-bench"],
        "host": "127.0.0.1",
        "port": free_port(),
        "usage_store": "sqlite:///" + str(rundir / "usage.db"),
    }
    path = rundir / "sapproxy.json"
    path.write_text(json.dumps(config))
    return path


class FakeRequest:
    """The little of a client request the dispatcher reads (headers for session affinity) and writes."""

    def __init__(self) -> None:
        from twisted.web.http_headers import Headers

        self.requestHeaders = Headers({b"content-type": [b"application/json"]})
        self.responseHeaders = Headers()

    def getHeader(self, name: bytes) -> bytes | None:
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


def gateway_process(config_path: str, warm: int, count: int) -> None:
    """The measured process: W + C forwards, one after another."""
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    from sapproxy.config import load_config
    from sapproxy.dispatch.plan import ClientRequest
    from sapproxy.record import RequestRecord
    from sapproxy.service import GatewayService
    from sapproxy.translate.client import openai_chat
    from sapproxy.translate.framing.sse import Rendered
    from sapproxy.translate.jsontext import compact_json

    config = load_config(Path(config_path))
    service = GatewayService(config, reactor)
    gateway = service.gateway
    api = openai_chat.CLIENT_API
    sizes = []

    async def one() -> None:
        request = FakeRequest()
        record = RequestRecord(client="openai", endpoint="/v1/chat/completions", started=reactor.seconds())
        body = json.loads(json.dumps(BODY))  # the route parses a fresh body per request
        client_request = ClientRequest(api, api.call(body, "gpt-4.1", {}), {})
        result, outcome = await gateway.forward(record, request, "gpt-4.1", client_request)
        out = result.json if type(result) is Rendered else compact_json(result).encode("utf-8", "replace")
        assert outcome.usage is not None and b'"choices"' in out, (outcome, out[:200])
        sizes.append(len(out))

    raw_mode = os.environ.get("UPSTREAM_HALF_RAW")
    if raw_mode:
        from sapproxy.dispatch.guards import read_whole
        from sapproxy.upstreams.sap_aicore import upstream_headers
        url = config.subaccounts["bench"].deployment_models["gpt-4.1"][0].encode() + \
            b"/chat/completions?api-version=2024-12-01-preview"
        payload = json.dumps(BODY).encode()

    async def raw_one() -> None:
        # Only the HTTP exchange: the client's POST and the whole body read, as the dispatcher makes them.
        response = await gateway.upstream.post(url, upstream_headers("bench-token", "default", None), payload)
        raw = await read_whole(response, reactor, timeout=60, limit=1 << 20)
        assert response.code == 200 and b'"choices"' in raw, raw[:200]

    async def run() -> None:
        try:
            gateway.start()
            for _ in range(warm + count):
                await (raw_one() if raw_mode else one())
        finally:
            await service.pool.closeCachedConnections()
            reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addErrback(lambda f: (f.printTraceback(), os._exit(1))))
    if os.environ.get("UPSTREAM_HALF_CPROFILE"):
        import cProfile
        prof = cProfile.Profile()
        reactor.callWhenRunning(prof.enable)
        reactor.run()
        prof.disable()
        prof.dump_stats(os.environ["UPSTREAM_HALF_CPROFILE"])
    else:
        reactor.run()
    print(f"{warm + count} forwards, last body {sizes[-1] if sizes else 0} bytes", file=sys.stderr)


def callgrind_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", "-n", type=int, default=500)
    p.add_argument("--warm", type=int, default=20)
    p.add_argument("--no-callgrind", action="store_true")
    p.add_argument("--cprofile", type=int, default=0, metavar="K")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        gateway_process(a.child[0], int(a.child[1]), int(a.child[2]))
        return
    rundir = Path(tempfile.mkdtemp(prefix="upstream-half-"))
    up = free_port()
    upstream = subprocess.Popen([sys.executable, str(BENCH / "upstream.py"), "--port", str(up)],
                                cwd=str(BENCH), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, Any] = {"requests": a.requests, "warm": a.warm}
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", up)) == 0:
                    break
            time.sleep(0.1)
        config = str(config_for(up, rundir))
        me = [sys.executable, str(Path(__file__).resolve()), "--child", config]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if not a.no_callgrind:
            totals = {}
            for k in (1, 2):
                out = rundir / f"callgrind.{k}.out"
                subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}"]
                               + me + [str(a.warm), str(k * a.requests)], check=True, env=env,
                               stderr=subprocess.DEVNULL)
                totals[k] = callgrind_total(out)
            result["instructions_per_request"] = round((totals[2] - totals[1]) / a.requests)
        if a.cprofile:
            stats = rundir / "cprofile.stats"
            subprocess.run(me + [str(a.warm), str(a.requests)], check=True,
                           env={**env, "UPSTREAM_HALF_CPROFILE": str(stats)})
            import pstats
            st = pstats.Stats(str(stats))
            rows = sorted(st.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # type: ignore[attr-defined]
            print(f"cumulative us per forward (cProfile; {a.warm + a.requests} forwards), calls per forward")
            for (file, line, fn), (cc, nc, tt, ct, _) in rows[:a.cprofile]:
                short = "/".join(Path(file).parts[-2:])
                n = a.warm + a.requests
                print(f"{nc / n:7.2f} own {1e6 * tt / n:7.1f} cum {1e6 * ct / n:7.1f}  {short}:{line}({fn})")
    finally:
        upstream.terminate()
        upstream.wait(10)
        if os.environ.get("UPSTREAM_HALF_KEEP"):
            print(f"kept {rundir}", file=sys.stderr)
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
