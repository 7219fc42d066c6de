"""
One command for the whole comparison:

    .venv/bin/python bench/run.py [--quick] [--repeats N] [--no-litellm] [--no-portkey] [--no-memory] [--profile]

Starts the lean upstream (bench/upstream.py, streams shaped like the recorded ones in tests/fixtures), the
bare Klein+treq pass-through (bench/bare_passthrough.py), sapproxy (this checkout, via twistd, with auth,
token cache, two deployments to balance over, SQLite usage rows and metrics), LiteLLM's proxy (its own venv,
bench/.venv-litellm) and Portkey's gateway (Node, bench/portkey/node_modules), both installed pinned on first
run; pins the gateways to one core and the upstream + load generators to the other, runs the matrix with
interleaved repeats and writes bench/results/latest.md (and latest.json).  ``--rebuild-report --readme`` puts
the report into README.md's performance section.

Every load loop is bounded in count and time; only 127.0.0.1 is ever a target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PY = sys.executable
VENV_LITELLM = BENCH / ".venv-litellm"
#: The LiteLLM release the peers were compared with in issue #18; pinned so that runs compare like with like.
LITELLM_VERSION = "1.108.7"
#: The stream load generator's event loop (bench/.venv-load): a third of asyncio's own loop's CPU per stream.
UVLOOP_VERSION = "0.23.0"
VENV_LOAD = BENCH / ".venv-load"
#: Portkey's gateway, with the dependency versions its own lockfile pins (bench/portkey/package.json's
#: overrides: with what npm resolves today its streams fail with "TypeError: immutable").
PORTKEY = BENCH / "portkey"
PORTKEY_SERVER = PORTKEY / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
README = ROOT / "README.md"

PORTS = {"upstream": 3199, "bare": 3198, "sapproxy": 3101, "litellm": 3197, "portkey": 3196}
#: Every target, in the order the tables list them.
ORDER = ["direct", "bare", "sapproxy", "portkey", "litellm"]
#: The gateways, all pinned to one core: only the one under load runs (L{Procs.alone}).
GATEWAYS = ("bare", "sapproxy", "portkey", "litellm")
TOKEN = "sk-bench"
LITELLM_KEY = "sk-bench-3f9c2a7d41e84b0c9a6d5e2f1b7c8d90"
MiB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ processes

def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (1 << 17, 65536, 40000):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Procs:
    def __init__(self, rundir: Path, cores: dict[str, str | None]) -> None:
        self.rundir = rundir
        self.cores = cores
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], role: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        core = self.cores.get(role)
        if core is not None:
            argv = ["taskset", "-c", core] + argv
        out = open(self.rundir / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.rundir,
                             env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs[name] = p
        return p

    @contextlib.contextmanager
    def alone(self, measured: str) -> Iterator[None]:
        """
        Only C{measured} of the gateways runs while it is under load: the others share its core, and an idle
        one is not idle (LiteLLM's background loops took about a fifth of that core), so they are stopped
        (SIGSTOP) and continued after.
        """
        paused = [p for name, p in self.procs.items()
                  if name in GATEWAYS and name != measured and p.poll() is None]
        for p in paused:
            os.killpg(p.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for p in paused:
                os.killpg(p.pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 10
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def fitting_streams(nofile: int, want: int = 10000) -> int:
    """
    How many concurrent streams sapproxy can hold under a descriptor limit of C{nofile}: two sockets a stream
    (client and upstream) and 64 of its own (listening socket, epoll, logs, the usage database, the pool's
    spare connections), at most C{want}.  It is the gateway's own connection budget
    (L{sapproxy.web.channel.connection_budget}), past which it sheds connections to stay able to answer.
    """
    return max(1, min(want, (nofile - 64) // 2))


def checkout_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """
    The environment a sapproxy process runs in: this checkout first on its path, so the benchmark measures
    the code in the tree, not whatever copy was last installed into the venv (twistd finds the plugin in
    ROOT/twisted/plugins the same way).  An experiment's own PYTHONPATH goes before it.
    """
    extra = dict(extra or {})
    extra["PYTHONPATH"] = os.pathsep.join(p for p in (extra.get("PYTHONPATH"), str(ROOT)) if p)
    return extra


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def port_free(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.3):
            return False
    except OSError:
        return True


def rss_mib(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every process in the process group (each server is a session leader)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is state: pgrp is the 5th field overall
            total += int(fields[11]) + int(fields[12])
    return total / tick


def gateway_pid(p: subprocess.Popen) -> int:
    # taskset execs the command, so the Popen pid is the gateway itself.
    return p.pid


# ------------------------------------------------------------------------------------------------ setup

def sapproxy_config(rundir: Path) -> Path:
    up = f"http://127.0.0.1:{PORTS['upstream']}"
    dep = up + "/v2/inference/deployments/"
    config = {
        "subAccounts": {"bench": {
            "resource_group": "default",
            "service_key_json": {"clientid": "bench-client", "clientsecret": "bench-secret", "url": up,
                                 "serviceurls": {"AI_API_URL": up}},
            "deployment_models": {
                # two deployments so the picker balances, as in production
                "gpt-4.1": [dep + "d-gpt41-a", dep + "d-gpt41-b"],
                "anthropic--claude-4.5-sonnet": [dep + "d-sonnet"],
                "anthropic--claude-4-sonnet": [dep + "d-sonnet-converse"],
                "gemini-2.5-pro": [dep + "d-gemini"],
            },
        }},
        "models": {"anthropic--claude-4-sonnet": {"converse": True}},
        "secret_authentication_tokens": [TOKEN],
        "host": "127.0.0.1",
        "port": PORTS["sapproxy"],
        "usage_store": "sqlite:///" + str(rundir / "usage.db"),
        "metrics_token": "bench-metrics",
        # Vendor providers on the same lean upstream: an OpenAI-compatible server (the model named in the body,
        # a bearer key) and Bedrock (every request SigV4-signed with credentials from boto3's chain; the lean
        # upstream does not check the signature, the gateway's cost of making it is what is measured).
        "providers": {
            "vendor-openai": {"kind": "openai", "base_url": up + "/v1", "api_key": "sk-bench-vendor",
                              "models": {"gpt-vendor": "gpt-4.1"}},
            "vendor-aws": {"kind": "bedrock", "region": "eu-central-1", "endpoint_url": up,
                           "models": {"claude-bedrock": "anthropic.claude-sonnet-4-5-20250929-v1:0",
                                      "nova-bedrock": "amazon.nova-pro-v1:0"}},
        },
    }
    path = rundir / "sapproxy.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def litellm_config(rundir: Path) -> Path:
    path = rundir / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: gpt-4.1\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4.1\n"
        f"      api_base: http://127.0.0.1:{PORTS['upstream']}/v1\n"
        "      api_key: bench\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
        "  disable_spend_logs: true\n"
    )
    return path


def ensure_litellm(notes: list[str]) -> Path | None:
    exe = VENV_LITELLM / "bin" / "litellm"
    marker = VENV_LITELLM / f".litellm-{LITELLM_VERSION}"
    if exe.exists() and marker.exists():
        return exe
    log(f"installing LiteLLM {LITELLM_VERSION} into bench/.venv-litellm (first run only)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV_LITELLM)], check=True, timeout=120)
        r = subprocess.run([str(VENV_LITELLM / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
                           capture_output=True, text=True, timeout=900)
    except Exception as e:  # noqa: BLE001
        notes.append(f"LiteLLM install failed: {e!r}; continuing without it")
        return None
    if r.returncode != 0 or not exe.exists():
        notes.append("LiteLLM install failed (pip exit %d): %s" % (r.returncode, r.stderr.strip()[-300:]))
        return None
    marker.touch()
    return exe


def ensure_load_python(notes: list[str]) -> str:
    """
    The Python the load generators run on: bench/.venv-load with uvloop (pinned), made on first use, so the
    stream client costs ~0.12 ms of CPU 0 per 50-event stream instead of ~0.25 ms on asyncio's own loop and
    the gateway measured beside it never waits on its client.  Without it, this venv's Python and asyncio.
    """
    py = VENV_LOAD / "bin" / "python"
    marker = VENV_LOAD / f".uvloop-{UVLOOP_VERSION}"
    if py.exists() and marker.exists():
        return str(py)
    log(f"installing uvloop {UVLOOP_VERSION} into bench/.venv-load (first run only)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV_LOAD)], check=True, timeout=120)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", f"uvloop=={UVLOOP_VERSION}"],
                           capture_output=True, text=True, timeout=600)
    except Exception as e:  # noqa: BLE001
        notes.append(f"uvloop install failed: {e!r}; streams driven on asyncio's own loop")
        return PY
    if r.returncode != 0:
        notes.append(f"uvloop install failed (pip exit {r.returncode}); streams driven on asyncio's own loop")
        return PY
    marker.touch()
    return str(py)


def ensure_portkey(notes: list[str]) -> Path | None:
    """
    Portkey's gateway from npm into bench/portkey/node_modules, exactly as bench/portkey/package-lock.json
    pins it (``npm ci``); its install script (patch-package, with no patches in the published package) is
    skipped.  Needs Node.js and npm (the machine's, or Debian's ``nodejs`` and ``npm`` packages).
    """
    if PORTKEY_SERVER.exists():
        return PORTKEY_SERVER
    if not shutil.which("npm") and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        log("installing Node.js and npm (apt-get install -y nodejs npm)")
        subprocess.run(["apt-get", "install", "-y", "-q", "nodejs", "npm"], capture_output=True, timeout=600)
    if not shutil.which("npm") or not shutil.which("node"):
        notes.append("Portkey not measured: Node.js/npm are not installed")
        return None
    log("installing Portkey's gateway into bench/portkey (first run only)")
    try:
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=PORTKEY,
                           capture_output=True, text=True, timeout=900)
    except Exception as e:  # noqa: BLE001
        notes.append(f"Portkey install failed: {e!r}; continuing without it")
        return None
    if r.returncode != 0 or not PORTKEY_SERVER.exists():
        notes.append("Portkey install failed (npm exit %d): %s" % (r.returncode, r.stderr.strip()[-300:]))
        return None
    return PORTKEY_SERVER


def peer_versions() -> dict[str, str]:
    """The versions of the peers as installed, for the report's header."""
    out = {}
    try:
        lock = json.loads((PORTKEY / "package-lock.json").read_text())
        pk = lock["packages"]
        out["portkey"] = (f"Portkey gateway {pk['node_modules/@portkey-ai/gateway']['version']} (hono "
                          f"{pk['node_modules/hono']['version']}, @hono/node-server "
                          f"{pk['node_modules/@hono/node-server']['version']}, Node {_node_version()})")
    except (OSError, KeyError, ValueError):
        pass
    out["litellm"] = f"LiteLLM {LITELLM_VERSION}"
    return out


def _node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"


def ensure_wrk(notes: list[str]) -> None:
    """
    wrk drives the plain-request points; install it from the system's packages when it is missing and we may
    (root with apt-get), else say that the slower asyncio client was used.
    """
    if shutil.which("wrk"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        log("installing wrk (apt-get install -y wrk)")
        try:
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=300)
        except Exception as e:  # noqa: BLE001
            notes.append(f"wrk install failed: {e!r}")
    if not shutil.which("wrk"):
        notes.append("wrk is not installed: plain requests were driven by the asyncio client (slower; its own "
                     "latency is in every target's numbers)")


# ------------------------------------------------------------------------------------------------ bodies

#: Stream cases: key, label, model, client path, Anthropic client?, #sim directive, and which targets run it
#: ("all"; "floor": direct, bare and sapproxy; "sapproxy": nobody else translates).  The upstream answers in the recorded shapes (bench/shapes.py); each stream has 50 content events.
STREAM_CASES: list[tuple[str, str, str, str, bool, dict[str, Any], str]] = [
    ("gpt_azure", "OpenAI client -> gpt, Azure chunks (filter results, obfuscation)", "gpt-4.1",
     "/v1/chat/completions", False, {"shape": "azure"}, "all"),
    ("gpt_openai", "OpenAI client -> gpt, OpenAI chunks (system_fingerprint, logprobs)", "gpt-4.1",
     "/v1/chat/completions", False, {"shape": "openai"}, "all"),
    ("gpt_azure_400b", "OpenAI client -> gpt, Azure chunks of 400 B of text", "gpt-4.1", "/v1/chat/completions",
     False, {"shape": "azure", "event_bytes": 400}, "all"),
    ("gpt_minimal", "OpenAI client -> gpt, minimal chunks (id/object/created/model/choices)", "gpt-4.1",
     "/v1/chat/completions", False, {"shape": "minimal", "event_bytes": 8}, "floor"),
    ("claude_to_openai", "OpenAI client -> Claude (Bedrock event-stream -> OpenAI chunks)",
     "anthropic--claude-4.5-sonnet", "/v1/chat/completions", False, {}, "sapproxy"),
    ("converse_to_openai", "OpenAI client -> Claude (ConverseStream -> OpenAI chunks)", "anthropic--claude-4-sonnet",
     "/v1/chat/completions", False, {}, "sapproxy"),
    ("gemini_to_openai", "OpenAI client -> Gemini (Vertex SSE -> OpenAI chunks)", "gemini-2.5-pro",
     "/v1/chat/completions", False, {}, "sapproxy"),
    ("gpt_to_anthropic", "Anthropic client /v1/messages -> gpt (Azure chunks -> Anthropic events)", "gpt-4.1",
     "/v1/messages", True, {"shape": "azure"}, "sapproxy"),
    ("responses_gpt", "Responses client /v1/responses -> gpt (native /responses, sanitised)", "gpt-4.1",
     "/v1/responses", False, {}, "sapproxy"),
    ("responses_claude", "Responses client /v1/responses -> Claude (Bedrock event-stream -> Responses events)",
     "anthropic--claude-4.5-sonnet", "/v1/responses", False, {}, "sapproxy"),
    ("vendor_openai_passthrough", "OpenAI client -> OpenAI-compatible provider, OpenAI chunks (pass-through)",
     "gpt-vendor", "/v1/chat/completions", False, {"shape": "openai"}, "sapproxy"),
    ("bedrock_signed", "OpenAI client -> Bedrock provider (SigV4-signed, event-stream -> OpenAI chunks)",
     "claude-bedrock", "/v1/chat/completions", False, {}, "sapproxy"),
    ("bedrock_converse", "OpenAI client -> Bedrock provider, Nova (SigV4-signed ConverseStream event-stream -> "
     "OpenAI chunks)", "nova-bedrock", "/v1/chat/completions", False, {}, "sapproxy"),
]
#: The GPT pass-through cases every target runs; the floor for the translated cases is bare's on Azure chunks.
PASSTHROUGH_CASES = [c[0] for c in STREAM_CASES if c[0].startswith("gpt_") and c[0] != "gpt_to_anthropic"]
FLOOR_CASE = "gpt_azure"


def directive(sim: dict[str, Any]) -> str:
    return "#sim" + json.dumps(sim) if sim else ""


def bodies(rundir: Path) -> dict[str, Path]:
    msgs = [{"role": "user", "content": "Say hello to the benchmark."}]
    b: dict[str, Any] = {
        "plain": {"model": "gpt-4.1", "messages": msgs, "max_tokens": 64},
        "gpt_stream": {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Say hello. " + directive(
            {"shape": "azure"})}], "max_tokens": 64, "stream": True},
    }
    for key, _, model, path, _, sim, _ in STREAM_CASES:
        said = [{"role": "user", "content": "Say hello to the benchmark. " + directive(sim)}]
        if path == "/v1/responses":
            b[key] = {"model": model, "max_output_tokens": 64, "stream": True, "input": said}
        else:
            b[key] = {"model": model, "max_tokens": 64, "stream": True, "messages": said}
    out = {}
    for k, v in b.items():
        p = rundir / f"body-{k}.json"
        p.write_text(json.dumps(v))
        out[k] = p
    return out


def hold_body(rundir: Path, events: int, delay: float) -> Path:
    msgs = [{"role": "user", "content": "slow please #sim{\"events\": %d, \"delay\": %g}" % (events, delay)}]
    p = rundir / f"body-hold-{events}-{delay:g}.json"
    p.write_text(json.dumps({"model": "gpt-4.1", "max_tokens": 64, "stream": True, "messages": msgs}))
    return p


# ------------------------------------------------------------------------------------------------ load

class Load:
    def __init__(self, core: str | None, rundir: Path, python: str = PY) -> None:
        self.core = core
        self.rundir = rundir
        self.python = python

    def _argv(self, args: list[str]) -> list[str]:
        argv = [self.python, str(BENCH / "loadgen.py")] + args
        return (["taskset", "-c", self.core] + argv) if self.core is not None else argv

    def run(self, args: list[str], timeout: float, cpu_of: int | None = None) -> dict[str, Any]:
        """
        One load point; its JSON result.  With C{cpu_of} (a server's process group), also C{cpu_pct}: that
        server's CPU over the load generator's own timed phase, from its C{GO} line to its result, so the
        generator's start-up (an interpreter's, ~0.1 s of a 5 s point) does not count as the server idling.
        """
        with tempfile.TemporaryFile("w+") as errors:
            p = subprocess.Popen(self._argv(args), stdout=subprocess.PIPE, stderr=errors, text=True)
            cpu0 = w0 = 0.0
            result: dict[str, Any] | None = None
            timer = threading.Timer(timeout, p.kill)
            timer.start()
            try:
                assert p.stdout is not None
                for line in p.stdout:
                    if line.startswith("GO") and cpu_of is not None:
                        cpu0, w0 = cpu_seconds(cpu_of), time.time()
                    elif line.startswith("{"):
                        result = json.loads(line)
                        if cpu_of is not None and w0:
                            result["cpu_pct"] = 100 * (cpu_seconds(cpu_of) - cpu0) / max(time.time() - w0, 1e-6)
                p.wait()
            finally:
                timer.cancel()
            if result is None:
                errors.seek(0)
                return {"error": f"loadgen failed (exit {p.returncode}): {errors.read().strip()[-400:]}"}
        return result

    def hold(self, args: list[str], timeout: float, on_open) -> dict[str, Any]:
        p = subprocess.Popen(self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        result: dict[str, Any] = {}
        end = time.time() + timeout
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith("OPEN"):
                result["open_line"] = line.strip()
                result.update(on_open() or {})
            elif line.startswith("{"):
                result.update(json.loads(line))
            if time.time() > end:
                break
        try:
            p.wait(max(1, end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            result["error"] = "hold loadgen timed out"
        return result


def auth_headers(target: str, anthropic: bool = False) -> list[str]:
    if target == "sapproxy":
        return [f"x-api-key: {TOKEN}", "anthropic-version: 2023-06-01"] if anthropic else \
            [f"Authorization: Bearer {TOKEN}"]
    if target == "litellm":
        return [f"Authorization: Bearer {LITELLM_KEY}"]
    if target == "portkey":
        # Portkey's headers-only routing: the OpenAI provider at a custom host (loopback is allowed by default).
        return ["Authorization: Bearer bench", "x-portkey-provider: openai",
                f"x-portkey-custom-host: http://127.0.0.1:{PORTS['upstream']}/v1"]
    return ["Authorization: Bearer bench"]


def url_for(target: str, path: str = "/v1/chat/completions") -> str:
    return f"http://127.0.0.1:{PORTS['upstream' if target == 'direct' else target]}{path}"


# ------------------------------------------------------------------------------------------------ report

def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def fmt(v: Any, nd: int = 1) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        return f"{v:,.{nd}f}"
    return str(v)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run (<= 2 minutes)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None, help="seconds per load point")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-portkey", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--hold", type=int, action="append", default=None,
                    help="concurrent slow streams for the memory test (repeatable; default 1000 and 10000)")
    ap.add_argument("--profile", action="store_true", help="py-spy sapproxy under stream load into results/")
    ap.add_argument("--memory-only", action="store_true", help="skip the throughput matrix (and LiteLLM)")
    ap.add_argument("--sapproxy-env", action="append", default=[], metavar="K=V",
                    help="extra environment for sapproxy (experiments, e.g. PYTHONPATH=bench/experiments/gc_tuning)")
    ap.add_argument("--rebuild-report", action="store_true",
                    help="only rewrite latest.md from latest.json (+ latest-memory.json)")
    ap.add_argument("--readme", action="store_true",
                    help="with --rebuild-report: also put the report into README.md's performance section")
    a = ap.parse_args()
    if a.rebuild_report:
        md = rebuild_report()
        if a.readme:
            README.write_text(readme_with(README.read_text(), md))
            log("README.md's performance section rewritten from bench/results/latest.json")
        print(md)
        return 0

    quick = a.quick
    repeats = a.repeats or (1 if quick else 3)
    dur = a.duration or (2.0 if quick else 5.0)
    concs = [1, 16, 64]
    stream_conc = 16
    t_start = time.time()
    notes: list[str] = []
    # 10,000 streams need a little over 20,000 descriptors (client and upstream side each): where the hard limit
    # is lower, the memory test holds the most that fit and the 10k row extrapolates from it.
    nofile = raise_nofile()
    fit = fitting_streams(nofile[0])
    holds = a.hold or ([1000] if quick else [1000, fit, 1000])
    if not a.hold and not quick and fit < 10000:
        notes.append(f"10,000 streams need about 20,064 descriptors in sapproxy (one client and one upstream socket "
                     f"each, and its own) but RLIMIT_NOFILE is {nofile[0]} and its hard limit cannot be raised "
                     f"here: the memory test held {fit:,}, the most that fit, and the 10k row extrapolates from it")

    RESULTS.mkdir(parents=True, exist_ok=True)
    rundir = RESULTS / ("run-" + time.strftime("%Y%m%d-%H%M%S"))
    rundir.mkdir()
    ncpu = os.cpu_count() or 1
    have_taskset = shutil.which("taskset") is not None
    if ncpu >= 2 and have_taskset:
        cores = {"gateway": "1", "load": "0"}
        pin_note = "gateways (bare, sapproxy, Portkey, LiteLLM) pinned to CPU 1; upstream + load generators pinned to CPU 0; the gateways not under load are stopped (SIGSTOP) meanwhile"
    else:
        cores = {"gateway": None, "load": None}
        pin_note = "not pinned (fewer than 2 cores or no taskset)"
    log(pin_note)
    log(f"RLIMIT_NOFILE now {nofile}")
    for name, port in PORTS.items():
        if name in ("litellm", "portkey") and (getattr(a, "no_" + name) or a.memory_only):
            continue
        if not port_free(port):
            log(f"port {port} ({name}) is busy: stop whatever is there first")
            return 2

    ensure_wrk(notes)
    procs = Procs(rundir, cores)
    load = Load(cores["load"], rundir, ensure_load_python(notes))
    b = bodies(rundir)
    results: dict[str, Any] = {"plain": {}, "streams": {}, "memory": {}}
    try:
        procs.start("upstream", [PY, str(BENCH / "upstream.py"), "--port", str(PORTS["upstream"])], "load")
        procs.start("bare", [PY, str(BENCH / "bare_passthrough.py"), "--port", str(PORTS["bare"]),
                             "--upstream", f"http://127.0.0.1:{PORTS['upstream']}"], "gateway")
        twistd = str(Path(PY).parent / "twistd")
        extra = {k: (str((ROOT / v).resolve()) if k == "PYTHONPATH" else v)
                 for k, _, v in (e.partition("=") for e in a.sapproxy_env)}
        # The Bedrock provider's credentials, from the environment as boto3's chain reads them (test values).
        aws = {"AWS_ACCESS_KEY_ID": "AKIABENCHEXAMPLE", "AWS_SECRET_ACCESS_KEY": "bench/secret/EXAMPLE",
               "AWS_EC2_METADATA_DISABLED": "true"}
        sap = procs.start("sapproxy", [twistd, "-n", "--pidfile=", "sapproxy", "--config",
                                       str(sapproxy_config(rundir))], "gateway", env=checkout_env({**aws, **extra}))
        if a.sapproxy_env:
            notes.append("sapproxy ran with extra environment: " + " ".join(a.sapproxy_env))
        targets = ["direct", "bare", "sapproxy"]
        lite = None
        if not a.no_litellm and not a.memory_only:
            exe = ensure_litellm(notes)
            if exe is not None:
                env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
                       "LITELLM_LOG": "ERROR", "DATABASE_URL": "", "NO_DOCS": "True"}
                env.pop("DATABASE_URL")
                lite = procs.start("litellm", [str(exe), "--config", str(litellm_config(rundir)), "--host",
                                               "127.0.0.1", "--port", str(PORTS["litellm"]), "--num_workers", "1"],
                                   "gateway", env=env)
        pk = None
        if not a.no_portkey and not a.memory_only:
            server = ensure_portkey(notes)
            if server is not None:
                pk = procs.start("portkey", ["node", str(server), f"--port={PORTS['portkey']}", "--headless"],
                                 "gateway", env={"NODE_ENV": "production"})
        for name in ("upstream", "bare", "sapproxy"):
            if not wait_port(PORTS[name], 30, procs.procs[name]):
                log(f"{name} did not start; see {rundir / (name + '.log')}")
                return 1
        if lite is not None:
            if wait_port(PORTS["litellm"], 120, lite):
                targets.append("litellm")
            else:
                notes.append(f"LiteLLM did not start within 120 s; see {rundir / 'litellm.log'}")
        if pk is not None:
            if wait_port(PORTS["portkey"], 60, pk):
                targets.append("portkey")
            else:
                notes.append(f"Portkey did not start within 60 s; see {rundir / 'portkey.log'}")
        targets = [t for t in ORDER if t in targets]
        results["versions"] = peer_versions()
        log(f"up: {', '.join(targets)}")
        # Warm up (token fetch, pools, imports).
        for t in targets:
            load.run(["plain", "--url", url_for(t), "--body-file", str(b["plain"]), "-c", "4", "-d", "1"]
                     + sum((["--header", h] for h in auth_headers(t)), []), 60)
            load.run(["streams", "--url", url_for(t), "--body-file", str(b["gpt_stream"]), "-c", "4", "-d", "1"]
                     + sum((["--header", h] for h in auth_headers(t)), []), 60)

        def server_pid(t: str) -> int:
            return procs.procs["upstream" if t == "direct" else t].pid

        def hdrs(t: str, anthropic: bool = False) -> list[str]:
            return sum((["--header", h] for h in auth_headers(t, anthropic)), [])

        stream_cases = make_stream_cases(targets)
        for rep in range(0 if a.memory_only else repeats):
            log(f"repeat {rep + 1}/{repeats}")
            for c in concs:
                order = targets[rep % len(targets):] + targets[:rep % len(targets)]  # rotate: interleave fairly
                for t in order:
                    with procs.alone(t):
                        r = load.run(["plain", "--url", url_for(t), "--body-file", str(b["plain"]), "-c", str(c),
                                      "-d", str(dur)] + hdrs(t), dur + 60, cpu_of=server_pid(t))
                    results["plain"].setdefault(f"{t}|{c}", []).append(r)
                    log(f"  plain c={c:<3} {t:9} {fmt(r.get('rps', float('nan')))} req/s p50 "
                        f"{fmt(r.get('p50_ms', float('nan')), 2)} ms errors {r.get('errors', r.get('error'))}")
            for key, _, body, path, anth, tlist in stream_cases:
                for t in tlist[rep % len(tlist):] + tlist[:rep % len(tlist)]:
                    with procs.alone(t):
                        r = load.run(["streams", "--url", url_for(t, path), "--body-file", str(b[body]), "-c",
                                      str(stream_conc), "-d", str(dur)] + hdrs(t, anth), dur + 90,
                                     cpu_of=server_pid(t))
                    results["streams"].setdefault(f"{key}|{t}", []).append(r)
                    log(f"  stream {key:17} {t:9} {fmt(r.get('streams_per_s', float('nan')))} streams/s "
                        f"{fmt(r.get('events_per_s', float('nan')), 0)} ev/s ttfb "
                        f"{fmt(r.get('ttfb_p50_ms', float('nan')), 2)} ms errors {r.get('errors', r.get('error'))}")

        if a.profile:
            profile_sapproxy(sap.pid, load, b, hdrs, rundir, notes)

        if not a.no_memory:
            pid = gateway_pid(sap)
            for n in holds:
                # Each stream must outlive the ramp (10k take ~45 s to all get a first byte), or they are never
                # all open at once: 4 events 5 s apart for 1k, 20 (~100 s) for the big ones.
                events, delay = (4, 5.0) if n <= 1000 else (20, 5.0)
                if quick:
                    events, delay = 3, 3.0
                before = rss_mib(pid)
                samples: dict[str, Any] = {}

                def on_open() -> dict[str, Any]:
                    time.sleep(0.5)
                    samples["rss_open"] = rss_mib(pid)
                    return {}

                log(f"memory: {n} concurrent slow streams ({events} events, {delay:g} s apart) through sapproxy")
                r = load.hold(["hold", "--url", url_for("sapproxy"), "--body-file", str(hold_body(rundir, events, delay)),
                               "-n", str(n), "--timeout", "300", "--ramp", "100"] + hdrs("sapproxy"), 600, on_open)
                time.sleep(5)  # the idle collection (sapproxy.memory) runs within 2 s of the last stream's end
                after = rss_mib(pid)
                r.update({"rss_before_mib": before, "rss_open_mib": samples.get("rss_open", float("nan")),
                          "rss_after_mib": after})
                r["rss_per_stream_kib"] = (r["rss_open_mib"] - before) * 1024 / n
                if n > fitting_streams(nofile[0]):
                    note = (f"{n} streams need about {2 * n + 64} descriptors in sapproxy (one client and one upstream "
                            f"socket each) but RLIMIT_NOFILE is {nofile[0]} and cannot be raised here (hard limit): "
                            f"failures at this size are the sandbox's limit, not necessarily sapproxy's")
                    if note not in notes:
                        notes.append(note)
                key = str(n) if str(n) not in results["memory"] else f"{n} (again)"
                results["memory"][key] = r
                log(f"  {n}: RSS before {fmt(before)} MiB, open {fmt(r['rss_open_mib'])} MiB "
                    f"({fmt(r['rss_per_stream_kib'])} KiB/stream), after {fmt(after)} MiB; completed "
                    f"{r.get('completed')} errors {r.get('errors')} unfinished {r.get('unfinished')} "
                    f"{r.get('error_samples') or ''}")
        results["sapproxy_alive"] = sap.poll() is None
    finally:
        procs.stop_all()

    md = report(results, targets, concs, stream_cases, stream_conc, dur, repeats, pin_note, notes,
                "cd /work/main && .venv/bin/python " + " ".join(["bench/run.py"] + sys.argv[1:]),
                time.time() - t_start, rundir)
    results["notes"] = notes
    results["meta"] = {"stream_conc": stream_conc, "duration": dur, "repeats": repeats, "pin_note": pin_note,
                       "elapsed": time.time() - t_start, "rundir": str(rundir),
                       "cmd": "cd /work/main && .venv/bin/python " + " ".join(["bench/run.py"] + sys.argv[1:])}
    stem = "latest-memory" if a.memory_only else "latest"  # a memory-only run does not replace the matrix
    if a.sapproxy_env:
        stem += "-experiment"  # nor does an experiment replace the baseline
    (RESULTS / f"{stem}.md").write_text(md)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    (rundir / "report.md").write_text(md)
    print(md)
    return 0


def make_stream_cases(targets: list[str]) -> list[tuple[str, str, str, str, bool, list[str]]]:
    """(key, label, body, client path, Anthropic client?, targets) for each case, with the targets that are up."""
    which = {"all": targets, "floor": [t for t in targets if t in ("direct", "bare", "sapproxy")],
             "sapproxy": ["sapproxy"]}
    return [(key, label, key, path, anth, which[run]) for key, label, _, path, anth, _, run in STREAM_CASES]


def rebuild_report() -> str:
    """latest.md again from latest.json, taking the memory section from latest-memory.json when the matrix run
    had none (``run.py --no-memory`` and ``run.py --memory-only`` done separately)."""
    results = json.loads((RESULTS / "latest.json").read_text())
    notes = list(results.get("notes", []))
    mem_path = RESULTS / "latest-memory.json"
    if not results.get("memory") and mem_path.exists():
        mem = json.loads(mem_path.read_text())
        results["memory"] = mem.get("memory", {})
        notes += [n for n in mem.get("notes", []) if n not in notes]
        notes.append("memory rows come from a separate `run.py --memory-only` run (bench/results/latest-memory.md)")
    targets = [t for t in ORDER if any(k.startswith(t + "|") for k in results["plain"])]
    meta = results.get("meta", {})
    md = report(results, targets, [1, 16, 64], make_stream_cases(targets), meta.get("stream_conc", 16),
                meta.get("duration", 5.0), meta.get("repeats", 3), meta.get("pin_note", "see README"), notes,
                meta.get("cmd", "?") + "  (report rebuilt with run.py --rebuild-report)",
                meta.get("elapsed", float("nan")), Path(meta.get("rundir", str(RESULTS))))
    (RESULTS / "latest.md").write_text(md)
    return md


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    twisted_v = subprocess.run([PY, "-c", "import twisted, klein, treq; print(twisted.__version__, klein.__version__,"
                                " treq.__version__)"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} CPU ({cpu}), {mem} RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, Twisted/Klein/treq {twisted_v}")


def report(results: dict[str, Any], targets: list[str], concs: list[int], stream_cases: list[Any], stream_conc: int,
           dur: float, repeats: int, pin_note: str, notes: list[str], cmd: str, elapsed: float, rundir: Path) -> str:
    P = results["plain"]
    S = results["streams"]
    M = results["memory"]
    nan = float("nan")
    notes = list(notes)

    def pm(t: str, c: int, k: str) -> float:
        return med([r.get(k, nan) for r in P.get(f"{t}|{c}", [])])

    def sm(key: str, t: str, k: str) -> float:
        return med([r.get(k, nan) for r in S.get(f"{key}|{t}", [])])

    def paired(a: str, b: str, c: int) -> list[float]:
        """a/b req/s within each repeat: the two ran minutes apart at most, so machine drift cancels."""
        xs, ys = P.get(f"{a}|{c}", []), P.get(f"{b}|{c}", [])
        return [x.get("rps", nan) / y["rps"] for x, y in zip(xs, ys) if y.get("rps")]

    def paired_streams(key: str, a: str, base_key: str, b: str) -> list[float]:
        xs, ys = S.get(f"{key}|{a}", []), S.get(f"{base_key}|{b}", [])
        return [x.get("streams_per_s", nan) / y["streams_per_s"] for x, y in zip(xs, ys) if y.get("streams_per_s")]

    def shown(v: float, pct: bool) -> str:
        return f"{fmt(100 * v, 0)}%" if pct else f"{fmt(v, 1)}x"

    def ratio_text(s: float, base: float, ratios: list[float], pct: bool) -> str:
        return (f"{fmt(s)} vs {fmt(base)} (medians: {shown(s / base if base else nan, pct)}; per repeat "
                f"{', '.join(shown(r, pct) for r in ratios)}: median {shown(med(ratios), pct)})")

    def cpu_ms_per_stream(key: str, t: str) -> float:
        """The gateway's CPU per completed stream: CPU seconds per second over streams per second."""
        per = [r.get("cpu_pct", nan) * 10 / r["streams_per_s"] for r in S.get(f"{key}|{t}", [])
               if r.get("streams_per_s")]
        return med(per)

    def stream_loop() -> str:
        """The stream client's event loop, and its median CPU per stream (runs before this one had neither)."""
        runs = [r for rs in S.values() for r in rs]
        loops = sorted({r.get("loop", "asyncio") for r in runs}) or ["asyncio"]
        cost = med([r["client_cpu_ms_per_stream"] for r in runs if "client_cpu_ms_per_stream" in r])
        return "/".join(loops) + (f", {cost:.2f} ms of client CPU per stream" if cost == cost else "")

    versions = results.get("versions", {})
    out = ["# sapproxy benchmark", "",
           f"- machine: {machine()}",
           f"- command: `{cmd}`",
           f"- {pin_note}",
           f"- {repeats} interleaved repeat(s), {dur:g} s per load point, medians shown; plain load by "
           f"{'wrk' if shutil.which('wrk') else 'asyncio client'}, streams by bench/loadgen.py "
           f"(keep-alive, {stream_conc} concurrent streams, on {stream_loop()})"]
    peers = [versions[t] for t in ("portkey", "litellm") if t in targets and t in versions]
    if peers:
        out.append(f"- peers: {'; '.join(peers)}")
    out += [f"- run took {elapsed:.0f} s; logs in `{_shown_path(rundir)}`", ""]
    out += ["## Plain (non-stream) requests: POST /v1/chat/completions, gpt-4.1", "",
            "| target | c | req/s | p50 ms | p99 ms | added p50 vs direct ms | server CPU % | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in concs:
        for t in targets:
            errs = sum(int(r.get("errors", 0) or 0) for r in P.get(f"{t}|{c}", []))
            added = pm(t, c, "p50_ms") - pm("direct", c, "p50_ms") if t != "direct" else nan
            out.append(f"| {t} | {c} | {fmt(pm(t, c, 'rps'))} | {fmt(pm(t, c, 'p50_ms'), 2)} | "
                       f"{fmt(pm(t, c, 'p99_ms'), 2)} | {fmt(added, 2) if t != 'direct' else '-'} | "
                       f"{fmt(pm(t, c, 'cpu_pct'), 0)} | {errs} |")
    out += ["", f"## Streams of 50 content events ({stream_conc} concurrent)", "",
            "The upstream sends the shapes of recorded provider streams (bench/shapes.py, from tests/fixtures).", "",
            "| case | target | streams/s | events/s | events/stream | TTFB p50 ms | TTFB p99 ms | added TTFB p50 ms "
            "| mean gap ms | server CPU % | CPU ms/stream | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, label, _, _, _, tlist in stream_cases:
        direct_ttfb = sm(key, "direct", "ttfb_p50_ms")
        if direct_ttfb != direct_ttfb:
            direct_ttfb = sm(FLOOR_CASE, "direct", "ttfb_p50_ms")
        for t in tlist:
            if f"{key}|{t}" not in S:
                continue
            errs = sum(int(r.get("errors", 0) or 0) for r in S.get(f"{key}|{t}", []))
            added = sm(key, t, "ttfb_p50_ms") - direct_ttfb if t != "direct" else nan
            out.append(f"| {label} | {t} | {fmt(sm(key, t, 'streams_per_s'))} | {fmt(sm(key, t, 'events_per_s'), 0)} | "
                       f"{fmt(sm(key, t, 'events_per_stream'), 0)} | {fmt(sm(key, t, 'ttfb_p50_ms'), 2)} | "
                       f"{fmt(sm(key, t, 'ttfb_p99_ms'), 2)} | {fmt(added, 2) if t != 'direct' else '-'} | "
                       f"{fmt(sm(key, t, 'gap_mean_ms'), 3)} | {fmt(sm(key, t, 'cpu_pct'), 0)} | "
                       f"{fmt(cpu_ms_per_stream(key, t), 2)} | {errs} |")
    starved = sorted({t for key, _, _, _, _, tlist in stream_cases for t in tlist
                      if t not in ("direct",) and sm(key, t, "cpu_pct") < 70})
    if starved:
        notes.append(f"stream points where the gateway used under 70% of its core ({', '.join(starved)}): the load "
                     "side (CPU 0) was the limit there, so streams/s understates the gateway; its CPU ms/stream "
                     "is the figure to compare")
    out += ["", "Server CPU % is the gateway's (or, for direct, the upstream's) user+system CPU over the load point "
            "(from the load generator's start to its end, its own start-up left out): near 100% means the gateway's core was the limit; well "
            "below means the gateway waited on the load side (CPU 0: upstream + client).  CPU ms/stream is that CPU per "
            "completed stream.", "",
            "Added TTFB is against the direct stream of the same case (the translated cases: against the direct "
            "Azure-shaped GPT stream, a different wire format of about the same size).", ""]

    # Peers side by side: sapproxy / peer, the median of the per-repeat ratios.
    peer_rows = [t for t in ("portkey", "litellm") if t in targets]
    if peer_rows:
        heads = [f"c={c}" for c in concs] + [f"streams: {k.split('_', 1)[1]}" for k in PASSTHROUGH_CASES
                                            if k != "gpt_minimal"]
        out += ["## sapproxy / peer (median of the per-repeat ratios)", "",
                "| peer | " + " | ".join(f"req/s {h}" if h.startswith("c=") else h + " streams/s" for h in heads) + " |",
                "|---|" + "---:|" * len(heads)]
        for t in peer_rows:
            cells = [shown(med(paired("sapproxy", t, c)), False) for c in concs]
            cells += [shown(med(paired_streams(k, "sapproxy", k, t)), False) for k in PASSTHROUGH_CASES
                      if k != "gpt_minimal"]
            out.append(f"| {versions.get(t, t)} | " + " | ".join(cells) + " |")
        out.append("")
    if M:
        out += ["## Memory: concurrent slow streams held open through sapproxy", "",
                "| streams | completed | errors | unfinished | open in s | RSS before MiB | RSS all open MiB | "
                "KiB per stream | RSS after end MiB |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for n, r in M.items():
            out.append(f"| {n} | {r.get('completed')} | {r.get('errors')} | {r.get('unfinished')} | "
                       f"{fmt(r.get('open_seconds', nan))} | {fmt(r['rss_before_mib'])} | "
                       f"{fmt(r['rss_open_mib'])} | {fmt(r['rss_per_stream_kib'])} | {fmt(r['rss_after_mib'])} |")
        out.append("")

    # Targets (issue #18's where it set them).
    rows = []
    bare_added = pm("bare", 1, "p50_ms") - pm("direct", 1, "p50_ms")
    sap_added = pm("sapproxy", 1, "p50_ms") - pm("direct", 1, "p50_ms")
    ok = sap_added <= 0.8 * bare_added if bare_added == bare_added and sap_added == sap_added else None
    rows.append(("added p50 at c=1 <= 0.8x bare's", f"sapproxy +{fmt(sap_added, 3)} ms vs bare +{fmt(bare_added, 3)} ms "
                 f"({fmt(sap_added / bare_added if bare_added else nan, 2)}x)", ok))
    # Throughput ratios are judged on the median of the per-repeat ratios (each repeat runs every target back to
    # back, so a slow patch of the machine hits both sides of a ratio); the ratio of the medians is shown too.
    for c in concs:
        s, br = pm("sapproxy", c, "rps"), pm("bare", c, "rps")
        ratios = paired("sapproxy", "bare", c)
        ok = med(ratios) >= 0.85 if ratios else None
        rows.append((f"plain req/s >= 85% of bare (c={c})", ratio_text(s, br, ratios, True), ok))
    for peer, name, wants in (("litellm", "LiteLLM", {c: 12.0 for c in concs}),
                              ("portkey", "Portkey", {1: 1.2, 16: 2.0, 64: 2.0})):
        if peer not in targets:
            rows.append((f"plain req/s vs {name}", f"{name} not measured", None))
            continue
        for c in concs:
            s, other = pm("sapproxy", c, "rps"), pm(peer, c, "rps")
            ratios = paired("sapproxy", peer, c)
            ok = med(ratios) >= wants[c] if ratios else None
            rows.append((f"plain req/s >= {wants[c]:g}x {name} (c={c})", ratio_text(s, other, ratios, False), ok))
    for key in PASSTHROUGH_CASES:
        s, br = sm(key, "sapproxy", "streams_per_s"), sm(key, "bare", "streams_per_s")
        ratios = paired_streams(key, "sapproxy", key, "bare")
        ok = med(ratios) >= 1.0 if ratios else None
        rows.append((f"GPT pass-through streams/s >= 100% of bare's ({key.split('_', 1)[1]} chunks)",
                     ratio_text(s, br, ratios, True), ok))
    floor = sm(FLOOR_CASE, "bare", "streams_per_s")
    for key, label, _, _, _, tlist in stream_cases:
        if key in PASSTHROUGH_CASES or tlist != ["sapproxy"]:
            continue
        if f"{key}|sapproxy" not in S:
            continue  # a report rebuilt from a run that had no such case
        s = sm(key, "sapproxy", "streams_per_s")
        ratios = paired_streams(key, "sapproxy", FLOOR_CASE, "bare")
        want = 1.0 if "passthrough" in key else 0.9  # a pass-through on another provider, or a translation
        ok = med(ratios) >= want if ratios else None
        rows.append((f"{key} streams/s >= {100 * want:.0f}% of bare's GPT pass-through (Azure chunks)",
                     ratio_text(s, floor, ratios, True), ok))
    if "portkey" in targets:
        for key in PASSTHROUGH_CASES:
            if key == "gpt_minimal":
                continue
            s, other = sm(key, "sapproxy", "streams_per_s"), sm(key, "portkey", "streams_per_s")
            ratios = paired_streams(key, "sapproxy", key, "portkey")
            ok = med(ratios) >= 2.0 if ratios else None
            rows.append((f"GPT pass-through streams/s >= 2x Portkey ({key.split('_', 1)[1]} chunks)",
                         ratio_text(s, other, ratios, False), ok))
    big = [(int(k), r) for k, r in M.items() if k.isdigit() and int(k) >= 9000]
    if big:
        # The largest size that ran (10,000 where the descriptor limit allows it; see fitting_streams).
        n, r = max(big, key=lambda item: item[0])
        est = r["rss_before_mib"] + r["rss_per_stream_kib"] * 10000 / 1024
        ok = (r["rss_open_mib"] <= 600 and est <= 600 and r.get("completed") == n) if est == est else None
        what = "" if n >= 10000 else (f"; 10k extrapolated from {n:,} (the most this machine's descriptor limit "
                                      f"allows): {fmt(est)} MiB")
        rows.append(("10k streams RSS <= 600 MiB, all complete",
                     f"{n:,} open: {fmt(r['rss_open_mib'])} MiB, {r.get('completed')}/{n} completed{what}", ok))
    else:
        rows.append(("10k streams RSS <= 600 MiB", "not run (use the full run)", None))
    out += ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    out += [f"| {n} | {m} | {verdict(ok)} |" for n, m, ok in rows]
    if not results.get("sapproxy_alive", True):
        notes.append("sapproxy exited during the run: see its log")
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


README_START = "<!-- bench/run.py --readme: generated from bench/results/latest.json; edit the generator, not this -->"
README_END = "<!-- end of bench/run.py --readme -->"


def readme_with(readme: str, md: str) -> str:
    """
    C{readme} with the report C{md} (its headings one level down) between the performance section's markers,
    the prose around them kept.
    """
    if README_START not in readme or README_END not in readme:
        raise SystemExit("README.md has no bench markers: put README_START and README_END (bench/run.py) where "
                         "the report goes")
    body = md.split("\n", 2)[2]  # without the "# sapproxy benchmark" title
    body = "\n".join("#" + line if line.startswith("## ") else line for line in body.splitlines())
    head, _, rest = readme.partition(README_START)
    _, _, tail = rest.partition(README_END)
    return head + README_START + "\n" + body.strip() + "\n" + README_END + tail


def profile_sapproxy(pid: int, load: Load, b: dict[str, Path], hdrs, rundir: Path, notes: list[str]) -> None:
    spy = Path(PY).parent / "py-spy"
    if not spy.exists():
        notes.append("py-spy not installed in .venv: no profile")
        return
    for key, body, path, anth in (("gpt_azure", "gpt_azure", "/v1/chat/completions", False),
                                  ("claude_to_openai", "claude_to_openai", "/v1/chat/completions", False),
                                  ("gpt_to_anthropic", "gpt_to_anthropic", "/v1/messages", True),
                                  ("plain", "plain", "/v1/chat/completions", False)):
        raw = rundir / f"pyspy-{key}.txt"
        spy_p = subprocess.Popen([str(spy), "record", "-p", str(pid), "-d", "8", "-r", "200", "-f", "raw", "-o",
                                  str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        mode = "plain" if key == "plain" else "streams"
        r = load.run([mode, "--url", url_for("sapproxy", path), "--body-file", str(b[body]), "-c", "16", "-d", "8"]
                     + hdrs("sapproxy", anth), 120)
        spy_p.wait(60)
        if raw.exists():
            subprocess.run([PY, str(BENCH / "profile_summary.py"), str(raw), "--seconds", "8", "--rate", "200", "--title",
                            f"sapproxy under {key} load: {json.dumps(r)}", "-o", str(RESULTS / f"profile-{key}.txt")])
            log(f"profile written: bench/results/profile-{key}.txt")


if __name__ == "__main__":
    sys.exit(main())
