"""
The integration suite's harness: real C{twistd} processes for the simulated SAP AI Core and the gateway, driven
over loopback sockets exactly as clients and operators drive them.

Both daemons run from the I{installed} package (C{pip install .} first) with their working directory in a
temporary folder, so the checkout's sources are never what is tested by accident.

Usage from a test module (this file is imported as C{daemon_harness}; pytest puts the test's folder on
C{sys.path})::

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory):
        with running_stack(tmp_path_factory.mktemp("stack")) as s:
            yield s
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")

#: The client token every gateway the harness starts accepts.
TOKEN = "sk-int-harness-0123456789"
SIM_CLIENT_ID = "sim-client"
SIM_CLIENT_SECRET = "sim-secret"

#: Model name -> simulator deployment id, as in the shipped config.json.
DEFAULT_MODELS: dict[str, str] = {
    "gpt-4.1": "d-gpt41",
    "gpt-5": "d-gpt5",
    "o3": "d-o3",
    "text-embedding-3-small": "d-embed",
    "anthropic--claude-4.5-sonnet": "d-sonnet",
    "anthropic--claude-4.1-opus": "d-opus",
    "anthropic--claude-4.5-haiku": "d-haiku",
    "gemini-2.5-pro": "d-gemini",
    "gemini-2.5-flash": "d-gemini-flash",
}

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """The resident set size of process C{pid} in KiB (VmRSS from /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ----------------------------------------------------------------------------------------------------------------
# Plain HTTP, the way a client without an SDK talks.


class Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:300]!r}>"


def http_request(method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None, *,
                 raw: bytes | None = None, timeout: float = 30.0) -> Reply:
    """One request on a fresh connection; the whole body is read. C{body} is sent as JSON, C{raw} as is."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return Reply(resp.status, dict(resp.getheaders()), payload)
    finally:
        conn.close()


def sse_lines(body: bytes) -> list[str]:
    return body.decode("utf-8").split("\n")


def sse_data(body: bytes) -> list[str]:
    """The C{data:} payloads of an SSE body, in order (including C{[DONE]})."""
    return [line[5:].strip() for line in sse_lines(body) if line.startswith("data:")]


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) for each SSE event of C{body}; comments are skipped."""
    out: list[tuple[str | None, str]] = []
    for block in body.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        name = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if name is not None or data:
            out.append((name, "\n".join(data)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Processes.


class Daemon:
    """One twistd process with its log file; stopped with SIGTERM, killed after L{STOP_TIMEOUT}."""

    def __init__(self, name: str, args: list[str], cwd: Path, log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.cwd = cwd
        self.log_path = log_path
        self.output_path = cwd / f"{name}.out"
        self._output = open(self.output_path, "wb")
        environ = dict(os.environ)
        environ.pop("PYTHONPATH", None)
        # The daemons connect directly unless a test gives them a proxy.
        for key in [k for k in environ if k.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")]:
            environ.pop(key)
        environ.update(env or {})
        env = environ
        self.process = subprocess.Popen(args, cwd=str(cwd), stdout=self._output, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        text = ""
        for path in (self.log_path, self.output_path):
            try:
                text += path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                pass
        return text

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.returncode = self.process.returncode
        self._output.close()
        return self.returncode


def _wait_until(check: Any, daemon: Daemon, what: str, timeout: float = START_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise RuntimeError(f"{daemon.name} exited with {daemon.process.returncode} before {what}:\n"
                               f"{daemon.log_text()[-4000:]}")
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise RuntimeError(f"{daemon.name}: no {what} after {timeout} s:\n{daemon.log_text()[-4000:]}")


class Simulator:
    """A C{twistd sapproxy-simulator} process and its control endpoints."""

    def __init__(self, daemon: Daemon, port: int, config: Mapping[str, Any] | None) -> None:
        self.daemon = daemon
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.config = config

    @property
    def pid(self) -> int:
        return self.daemon.pid

    def deployment_url(self, deployment_id: str) -> str:
        return f"{self.base}/v2/inference/deployments/{deployment_id}"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        reply = http_request(method, self.base + path, body)
        if reply.status != 200:
            raise RuntimeError(f"simulator {method} {path}: {reply}")
        return reply.json()

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "/_sim/stats")

    def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.control("GET", "/_sim/requests" + (f"?limit={limit}" if limit is not None else ""))

    def inference_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["path"].startswith("/v2/inference/")]

    def arm(self, deployment: str, fault: str, count: int = 1, **knobs: Any) -> Any:
        return self.control("POST", "/_sim/faults", {"deployment": deployment, "fault": fault, "count": count,
                                                      **knobs})

    def clear_faults(self) -> Any:
        return self.control("DELETE", "/_sim/faults")

    def token(self) -> str:
        """A fresh XSUAA token, as the gateway would fetch one (counts as a token request)."""
        basic = base64.b64encode(f"{SIM_CLIENT_ID}:{SIM_CLIENT_SECRET}".encode()).decode()
        reply = http_request("POST", self.base + "/oauth/token?grant_type=client_credentials", raw=b"",
                             headers={"Authorization": f"Basic {basic}"})
        assert reply.status == 200, reply
        return reply.json()["access_token"]

    def direct(self, deployment: str, subpath: str, body: Any, token: str,
               resource_group: str = "default") -> Reply:
        """A call straight to a simulated deployment, bypassing the gateway."""
        return http_request("POST", f"{self.deployment_url(deployment)}/{subpath}", body,
                            {"Authorization": f"Bearer {token}", "AI-Resource-Group": resource_group})


def start_simulator(directory: Path, config: Mapping[str, Any] | None = None, name: str = "sim") -> Simulator:
    """Start a simulator on a port it picks itself (port 0), read from its log."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{name}.log"
    args = [TWISTD, "-n", "--pidfile=", f"--logfile={log_path}", "sapproxy-simulator", "--port", "0"]
    if config is not None:
        config_path = directory / f"{name}-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        args += ["--config", str(config_path)]
    daemon = Daemon(name, args, directory, log_path)
    try:
        def port() -> int | None:
            m = re.search(r"Site starting on (\d+)", daemon.log_text())
            return int(m.group(1)) if m else None

        sim = Simulator(daemon, _wait_until(port, daemon, "listening port"), config)

        def answers() -> bool:
            try:
                return http_request("GET", sim.base + "/_sim/stats", timeout=2).status == 200
            except OSError:
                return False

        _wait_until(answers, daemon, "answer on /_sim/stats")
        return sim
    except BaseException:
        daemon.stop()
        raise


def subaccount(sim: Simulator, models: Mapping[str, str | list[str]] | None = None, *,
               resource_group: str = "default", clientid: str = SIM_CLIENT_ID,
               clientsecret: str = SIM_CLIENT_SECRET) -> dict[str, Any]:
    """One C{subAccounts} entry on C{sim}: model name -> deployment id(s)."""
    models = models if models is not None else DEFAULT_MODELS
    deployment_models = {
        model: [sim.deployment_url(d) for d in ([ids] if isinstance(ids, str) else ids)]
        for model, ids in models.items()
    }
    return {
        "resource_group": resource_group,
        "service_key_json": {"clientid": clientid, "clientsecret": clientsecret, "url": sim.base,
                             "serviceurls": {"AI_API_URL": sim.base}},
        "deployment_models": deployment_models,
    }


def gateway_config(directory: Path, accounts: Mapping[str, Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "subAccounts": dict(accounts),
        "secret_authentication_tokens": [TOKEN],
        "host": "127.0.0.1",
        "usage_store": f"sqlite:///{directory / 'usage.db'}",
    }
    config.update(extra)
    return config


class Gateway:
    """A C{twistd sapproxy} process."""

    def __init__(self, daemon: Daemon, port: int, config_path: Path, config: Mapping[str, Any]) -> None:
        self.daemon = daemon
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.config_path = config_path
        self.config = config

    @property
    def pid(self) -> int:
        return self.daemon.pid

    def log_text(self) -> str:
        return self.daemon.log_text()

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    @property
    def usage_db(self) -> Path:
        return Path(self.config["usage_store"].removeprefix("sqlite:///"))

    def usage_rows(self, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if not self.usage_db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.usage_db}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(f"SELECT * FROM usage_records WHERE {where} ORDER BY id", params).fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise
            return [dict(r) for r in rows]
        finally:
            conn.close()

    def wait_usage_rows(self, count: int, where: str = "1=1", params: tuple[Any, ...] = (),
                        timeout: float = 10.0) -> list[dict[str, Any]]:
        """Rows matching C{where}, once at least C{count} of them are written (the store flushes every second)."""
        deadline = time.monotonic() + timeout
        rows = self.usage_rows(where, params)
        while len(rows) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = self.usage_rows(where, params)
        return rows

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}", **extra}

    def post(self, path: str, body: Any, headers: Mapping[str, str] | None = None, **kw: Any) -> Reply:
        return http_request("POST", self.base + path, body, headers if headers is not None else self.headers(), **kw)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return http_request("GET", self.base + path, None, headers if headers is not None else self.headers())

    def health(self) -> dict[str, Any]:
        return http_request("GET", self.base + "/health").json()


def start_gateway(directory: Path, config: Mapping[str, Any], name: str = "gw",
                  env: Mapping[str, str] | None = None) -> Gateway:
    """Write C{config} (a free port added) and start the gateway on it; retries once on a port race."""
    directory.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        body = {**config, "port": port}
        config_path = directory / f"{name}-config.json"
        config_path.write_text(json.dumps(body, indent=2))
        log_path = directory / f"{name}.log"
        if log_path.exists():
            log_path.unlink()
        daemon = Daemon(name, [TWISTD, "-n", "--pidfile=", f"--logfile={log_path}", "sapproxy",
                               "--config", str(config_path)], directory, log_path, env=env)
        gateway = Gateway(daemon, port, config_path, body)

        def healthy() -> bool:
            try:
                # 503: up and answering, but no subaccount can serve (its SAP credentials are refused).
                return http_request("GET", gateway.base + "/health", timeout=2).status in (200, 503)
            except OSError:
                return False

        try:
            _wait_until(healthy, daemon, "answer on /health")
            return gateway
        except RuntimeError as e:
            daemon.stop()
            last = e
            if "Address already in use" not in daemon.log_text():
                raise
    assert last is not None
    raise last


class Stack:
    """A simulator and a gateway serving its deployments."""

    def __init__(self, sim: Simulator, gateway: Gateway) -> None:
        self.sim = sim
        self.gateway = gateway

    @property
    def base(self) -> str:
        return self.gateway.base


@contextlib.contextmanager
def running(*daemons: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for d in daemons:
            d.daemon.stop()


@contextlib.contextmanager
def running_stack(directory: Path, *, models: Mapping[str, str | list[str]] | None = None,
                  sim_config: Mapping[str, Any] | None = None, **gateway_extra: Any) -> Iterator[Stack]:
    """A simulator and a gateway in C{directory}, both stopped (SIGTERM, then kill) on the way out."""
    sim = start_simulator(directory, sim_config)
    try:
        config = gateway_config(directory, {"simulated": subaccount(sim, models)}, **gateway_extra)
        gateway = start_gateway(directory, config)
        try:
            yield Stack(sim, gateway)
        finally:
            gateway.daemon.stop()
    finally:
        sim.daemon.stop()


class RawStream:
    """A streaming request on a raw socket, so the test decides when (and whether) to read."""

    def __init__(self, gateway: "Gateway", path: str, body: Any, rcvbuf: int = 64 * 1024,
                 user_agent: str = "raw") -> None:
        payload = json.dumps(body).encode()
        auth = f"x-api-key: {TOKEN}" if path.startswith("/v1/messages") else f"Authorization: Bearer {TOKEN}"
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n{auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nUser-Agent: {user_agent}\r\n"
                f"Connection: close\r\n\r\n")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive buffer, so the kernel does not soak up much of the stream for us.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", gateway.port))
        self.sock.sendall(head.encode() + payload)
        self.received = bytearray()
        self.total = 0

    def read_until(self, marker: bytes, count: int = 1, limit: int = 10_000_000) -> None:
        while self.received.count(marker) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed early: {bytes(self.received[-500:])!r}")
            self.received += chunk
            self.total += len(chunk)
            assert self.total < limit

    @property
    def headers(self) -> str:
        return bytes(self.received).partition(b"\r\n\r\n")[0].decode("latin-1")

    def request_id(self) -> str:
        for line in self.headers.split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "x-request-id":
                return value.strip()
        raise AssertionError(f"no x-request-id in {self.headers!r}")

    def drain(self, keep_tail: int = 4096) -> bytes:
        """Read to the end of the connection; returns the last C{keep_tail} bytes."""
        tail = bytearray()
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.total += len(chunk)
            tail = (tail + chunk)[-keep_tail:]
        return bytes(tail)

    def close(self) -> None:
        self.sock.close()


def directive(**fields: Any) -> str:
    """The C{#sim{...}} directive text for the simulator."""
    return "#sim" + json.dumps(fields, separators=(",", ":"))
