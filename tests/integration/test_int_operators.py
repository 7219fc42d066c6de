"""
What an operator runs into first, against real C{twistd} processes: the JSON log of a daemonised gateway
written where C{--logfile} says, every request in it (and in the metrics) with its real method and path, 401,
404, 405 and 413 included, status lines with reason phrases, the start-up summary, keys that work the moment
C{sapproxy-admin} returns, and the shipped config with its simulator moved to another port.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from daemon_harness import (
    BIN,
    TOKEN,
    TWISTD,
    Simulator,
    free_port,
    gateway_config,
    http_request,
    start_simulator,
    subaccount,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ADMIN = str(BIN / "sapproxy-admin")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hello"}]}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("SAPPROXY_LOG_FILE", None)
    return env


def _wait(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


class Daemonised:
    """A gateway that twistd daemonised itself (no -n): known only by its pidfile and its log file."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / "gw-config.json"
        self.config_path.write_text(json.dumps({**config, "port": self.port}))
        self.log_path = directory / "logs" / "gateway.json"
        self.log_path.parent.mkdir()
        self.pidfile = directory / "gw.pid"
        started = subprocess.run(
            [TWISTD, f"--pidfile={self.pidfile}", f"--logfile={self.log_path}",
             "--logger=sapproxy.logs.json_observer", "sapproxy", "--config", str(self.config_path)],
            cwd=str(directory), env=_env(), capture_output=True, text=True, timeout=60)
        # The parent returns once the daemon has forked away; the log file is all there is to read.
        assert started.returncode == 0, (started.stdout, started.stderr)
        self.pid = int(_wait("pidfile", lambda: self.pidfile.exists() and self.pidfile.read_text().strip()))
        _wait("listening line", lambda: "listening on" in self.text())

    def text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]

    def requests(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["namespace"] == "sapproxy.request"]

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = start_simulator(tmp_path_factory.mktemp("opsim"))
    try:
        yield s
    finally:
        s.daemon.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemonised]:
    directory = tmp_path_factory.mktemp("opgw")
    config = gateway_config(directory, {"simulated": subaccount(sim)}, max_body_bytes=4096)
    gw = Daemonised(directory, config)
    try:
        yield gw
    finally:
        gw.stop()


def status_line(base: str, method: str, path: str, headers: dict[str, str] | None = None,
                body: Any = None) -> tuple[int, str]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.reason
    finally:
        conn.close()


def oversized(base: str) -> bytes:
    """A request whose Content-Length passes the limit: answered before its body is sent."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"User-Agent: big-client\r\nContent-Length: 100000\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_int_daemonised_json_log_has_every_request(daemon: Daemonised) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert status_line(daemon.base, "GET", "/no/such/route") == (404, "Not Found")
    assert status_line(daemon.base, "DELETE", "/v1/models", auth) == (405, "Method Not Allowed")
    assert status_line(daemon.base, "GET", "/v1/models") == (401, "Unauthorized")
    assert status_line(daemon.base, "GET", "/v1/models", auth) == (200, "OK")
    assert status_line(daemon.base, "POST", "/v1/chat/completions", auth, CHAT) == (200, "OK")
    assert oversized(daemon.base).startswith(b"HTTP/1.1 413 Payload Too Large\r\n")

    def seen() -> list[dict[str, Any]] | None:
        lines = daemon.requests()
        return lines if len(lines) >= 6 else None

    lines = _wait("six request lines", seen)
    got = [(r["method"], r.get("path", r["endpoint"]), r["status"]) for r in lines]
    assert got == [("GET", "/no/such/route", 404), ("DELETE", "/v1/models", 405), ("GET", "/v1/models", 401),
                   ("GET", "/v1/models", 200), ("POST", "/v1/chat/completions", 200),
                   ("POST", "/v1/chat/completions", 413)], got
    assert lines[0]["message"].startswith("GET /no/such/route 404 ")
    assert lines[3]["message"].startswith("GET /v1/models 200 ")
    assert lines[4]["model"] == "gpt-4.1" and lines[4]["key"] == "config#0"
    assert lines[5]["user_agent"] == "big-client"

    records = daemon.records()
    assert all(RFC3339_MS.match(r["time"]) for r in records), [r["time"] for r in records][:5]
    assert not any(isinstance(v, float) and k.endswith("time") for r in records for k, v in r.items())
    assert TOKEN not in daemon.text()

    metrics = http_request("GET", daemon.base + "/metrics").body.decode()
    for endpoint, status in [("(unmatched)", "404"), ("/v1/models", "405"), ("/v1/models", "401"),
                             ("/v1/chat/completions", "413"), ("/v1/chat/completions", "200")]:
        pattern = (rf'sapproxy_requests_total\{{endpoint="{re.escape(endpoint)}",model="[^"]*",'
                   rf'status="{status}",subaccount="[^"]*"\}} 1\.0')
        assert re.search(pattern, metrics), (endpoint, status)


def test_int_startup_summary_and_no_false_auth_warning(daemon: Daemonised) -> None:
    messages = [r["message"] for r in daemon.records() if r["namespace"] == "sapproxy.startup"]
    assert messages[0].startswith("subaccount simulated (resource group default): service key client sim-client")
    assert messages[0].endswith("(ok)")
    assert "  anthropic--claude-4.5-haiku: Bedrock (Anthropic), 1 deployment (d-haiku)" in messages
    assert "  gemini-2.5-flash: Vertex AI (Gemini), 1 deployment (d-gemini-flash)" in messages
    assert messages[-1].startswith("client keys: 1 configured token (secret_authentication_tokens); 0 usable keys")
    assert "AUTHENTICATION IS DISABLED" not in daemon.text()


def test_int_keys_work_and_stop_the_moment_the_cli_returns(daemon: Daemonised) -> None:
    def admin(*args: str) -> str:
        result = subprocess.run([ADMIN, "--config", str(daemon.config_path), *args], capture_output=True,
                                text=True, timeout=60, env=_env())
        assert result.returncode == 0, result
        return result.stdout

    out = admin("keys", "create", "--name", "ops-now", "--rpm", "1")
    assert "running gateways (they re-read keys every 1 s) now accept it" in out
    key = next(line for line in out.splitlines() if line.startswith("sk-sap-"))
    headers = {"Authorization": f"Bearer {key}"}
    # No polling: the first request after the command returns is served.
    assert status_line(daemon.base, "POST", "/v1/chat/completions", headers, CHAT) == (200, "OK")
    # The key's limit of one request a minute: refused with a proper reason phrase, not "Unknown Status".
    assert status_line(daemon.base, "POST", "/v1/chat/completions", headers, CHAT) == (429, "Too Many Requests")
    out = admin("keys", "revoke", "ops-now")
    assert "now refuse it" in out
    assert status_line(daemon.base, "GET", "/v1/models", headers) == (401, "Unauthorized")


def test_int_shipped_config_with_the_simulator_moved(tmp_path: Path) -> None:
    raw = json.loads((ROOT / "config.json").read_text())
    gateway_port, simulator_port = free_port(), free_port()
    raw.update(port=gateway_port, simulator={"port": simulator_port}, usage_store=f"sqlite:///{tmp_path}/u.db")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    log = tmp_path / "gw.log"
    process = subprocess.Popen([TWISTD, "-n", "--pidfile=", f"--logfile={log}", "sapproxy", "--config", str(path)],
                               cwd=str(tmp_path), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{gateway_port}"
        _wait("listening line", lambda: log.exists() and "listening on" in log.read_text())
        assert f"embedded simulated SAP AI Core on http://127.0.0.1:{simulator_port}" in log.read_text()
        reply = http_request("POST", base + "/v1/chat/completions", CHAT, {"Authorization": "Bearer sk-local-dev"})
        assert reply.status == 200, reply
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
