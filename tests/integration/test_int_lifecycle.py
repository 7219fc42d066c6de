"""
The daemon's shutdown, as an orchestrator drives it: SIGTERM stops accepting at once, in-flight streams get
C{drain_timeout} seconds to finish, what is left is cut, every request keeps its usage row, and the process exits
promptly without a traceback.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from daemon_harness import (
    RawStream, Simulator, directive, gateway_config, sse_data, start_gateway, start_simulator, subaccount,
)

pytestmark = pytest.mark.integration


def _chat_body(text: str, stream: bool = True) -> dict[str, Any]:
    return {"model": "gpt-4.1", "stream": stream, "messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = start_simulator(tmp_path_factory.mktemp("lifecycle-sim"))
    try:
        yield s
    finally:
        s.daemon.stop()


class _Stack:
    def __init__(self, sim: Simulator, gateway: Any) -> None:
        self.sim = sim
        self.gateway = gateway
        self.base = gateway.base


def _gateway(directory: Path, sim: Simulator, drain_timeout: float) -> _Stack:
    config = gateway_config(directory, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                            drain_timeout=drain_timeout)
    return _Stack(sim, start_gateway(directory, config))


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def _dechunk_data(raw: bytes) -> list[str]:
    body = raw.partition(b"\r\n\r\n")[2]
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return sse_data(bytes(out))


def test_int_sigterm_lets_inflight_stream_finish(tmp_path: Path, sim: Simulator) -> None:
    stack = _gateway(tmp_path, sim, drain_timeout=10)
    try:
        warm = stack.gateway.post("/v1/chat/completions", _chat_body("warm", stream=False))
        assert warm.status == 200
        stream = RawStream(stack.gateway, "/v1/chat/completions",
                           _chat_body("drain me " + directive(events=20, delay=0.1)), user_agent="drain-ok")
        try:
            stream.read_until(b"data: ", 3)
            signalled = time.monotonic()
            stack.gateway.daemon.process.send_signal(15)
            # New connections are refused at once, while the stream goes on.
            deadline = time.monotonic() + 1
            while not _refuses_connections(stack.gateway.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _refuses_connections(stack.gateway.port), "still accepting after SIGTERM"
            while True:
                chunk = stream.sock.recv(65536)
                if not chunk:
                    break
                stream.received += chunk
        finally:
            stream.close()
        data = _dechunk_data(bytes(stream.received))
        assert data[-1] == "[DONE]" and data.count("[DONE]") == 1, data[-3:]
        assert len(data) >= 21, "every event of the in-flight stream arrived"
        stack.gateway.daemon.process.wait(10)
        took = time.monotonic() - signalled
        assert took < 6, f"exit took {took:.1f} s"
        assert stack.gateway.daemon.process.returncode in (0, -15)
        rows = stack.gateway.usage_rows()
        assert [(r["user_agent"], r["status"], r["client_hung_up"]) for r in rows][-1] == ("drain-ok", 200, 0)
        assert len(rows) == 2, "usage rows are flushed before the process exits"
        assert "Traceback" not in stack.gateway.log_text()
    finally:
        stack.gateway.daemon.stop()


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory, sim: Simulator) -> dict[str, Any]:
    """A stream far longer than drain_timeout=1, then SIGTERM: what happened."""
    stack = _gateway(tmp_path_factory.mktemp("lifecycle-cut"), sim, drain_timeout=1)
    try:
        stream = RawStream(stack.gateway, "/v1/chat/completions",
                           _chat_body("long " + directive(events=1000, delay=0.05)), user_agent="drain-cut")
        try:
            stream.read_until(b"data: ", 3)
            signalled = time.monotonic()
            stack.gateway.daemon.process.send_signal(15)
            received = b""
            try:
                while chunk := stream.sock.recv(65536):
                    received += chunk
            except OSError:
                pass
            client_end = time.monotonic() - signalled
        finally:
            stream.close()
        stack.gateway.daemon.process.wait(15)
        return {"client_end": client_end, "received": received, "exit": time.monotonic() - signalled,
                "returncode": stack.gateway.daemon.process.returncode, "rows": stack.gateway.usage_rows(),
                "log": stack.gateway.log_text(), "sim_open": sim.stats()["open_streams"]}
    finally:
        stack.gateway.daemon.stop()


def test_int_drain_timeout_cuts_long_stream_and_exits(cut: dict[str, Any]) -> None:
    # The stream ends in its own dialect: an error chunk naming the shutdown, then exactly one [DONE].
    tail = cut["received"].rsplit(b"data: ", 2)
    assert b'"error"' in tail[-2] and b"shutting down" in tail[-2], cut["received"][-400:]
    assert tail[-1].startswith(b"[DONE]") and cut["received"].count(b"data: [DONE]") == 1
    assert 0.8 < cut["client_end"] < 4, cut["client_end"]
    assert cut["exit"] < 5
    assert cut["returncode"] in (0, -15)
    assert cut["sim_open"] == 0, "the upstream stream was closed too"
    assert "Traceback" not in cut["log"]


def test_int_drain_timeout_keeps_usage_row(cut: dict[str, Any]) -> None:
    assert "dropped" not in cut["log"], [line for line in cut["log"].splitlines() if "dropped" in line]
    rows = [r for r in cut["rows"] if r["user_agent"] == "drain-cut"]
    assert len(rows) == 1
