"""
The attacks against the real daemon (twistd sapproxy) and the simulated SAP AI Core, over sockets.

 - item 2: the usage store unavailable at start-up; 500 requests served; SIGTERM; restart with the store
   back: 500 of 500 rows.
 - item 15: requests still waiting for upstream headers at the drain timeout get a 503 in their dialect.
 - item 3: 300 slow-header connections trickling bytes; normal clients keep being served; the slow ones
   are closed at the head deadline.
 - exposure: with an ops_token, the public /health says status only.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from daemon_harness import (  # noqa: E402
    Simulator, directive, gateway_config, http_request, start_gateway, start_simulator, subaccount,
)

pytestmark = pytest.mark.integration

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = start_simulator(tmp_path_factory.mktemp("attack-sim"))
    try:
        yield s
    finally:
        s.daemon.stop()


def test_store_down_at_start_loses_no_row(tmp_path: Path, sim: Simulator) -> None:
    later = tmp_path / "db-later"
    config = gateway_config(tmp_path, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                            usage_store=f"sqlite:///{later / 'usage.db'}")
    gw = start_gateway(tmp_path, config)
    try:
        for i in range(500):
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "max_tokens": 5, "messages": HI},
                            headers=gw.headers(**{"User-Agent": f"row-{i}"}))
            assert reply.status == 200, reply
    finally:
        gw.daemon.stop()
    log = gw.log_text()
    assert "usage store" in log and "unavailable" in log and "dropped" not in log, log[-2000:]
    assert (tmp_path / "usage-spool.jsonl").stat().st_size > 0
    later.mkdir()
    gw = start_gateway(tmp_path, config, name="gw2")
    try:
        gw.config = {**gw.config, "usage_store": f"sqlite:///{later / 'usage.db'}"}
        rows = gw.wait_usage_rows(500, timeout=15)
        assert sorted(r["user_agent"] for r in rows) == sorted(f"row-{i}" for i in range(500))
    finally:
        gw.daemon.stop()
    assert not (tmp_path / "usage-spool.jsonl").exists() or (tmp_path / "usage-spool.jsonl").stat().st_size == 0


def test_requests_waiting_at_the_drain_timeout_get_a_503_in_their_dialect(tmp_path: Path, sim: Simulator) -> None:
    config = gateway_config(tmp_path, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})}, drain_timeout=1)
    gw = start_gateway(tmp_path, config)
    slow = "wait " + directive(fault="slow_headers", delay=30)
    replies: dict[str, Any] = {}

    def send(route: str) -> None:
        body = {"model": "gpt-4.1", "max_tokens": 5, "messages": [{"role": "user", "content": slow}]}
        replies[route] = http_request("POST", gw.base + route, body, gw.headers(), timeout=20)

    try:
        assert gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}).status == 200
        threads = [threading.Thread(target=send, args=(r,)) for r in ("/v1/chat/completions", "/v1/messages")]
        for t in threads:
            t.start()
        time.sleep(1.0)
        gw.daemon.process.send_signal(15)
        for t in threads:
            t.join(15)
        gw.daemon.process.wait(15)
    finally:
        gw.daemon.stop()
    openai, anthropic = replies["/v1/chat/completions"], replies["/v1/messages"]
    assert openai.status == 503 and openai.json()["error"]["type"] == "service_unavailable", openai
    assert anthropic.status == 503 and anthropic.json()["error"]["type"] == "overloaded_error", anthropic
    assert "shutting down" in openai.json()["error"]["message"]
    assert "Traceback" not in gw.log_text()


def test_slow_header_attack_does_not_stop_normal_clients(tmp_path: Path, sim: Simulator) -> None:
    config = gateway_config(tmp_path, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                            timeouts={"request_headers": 3})
    gw = start_gateway(tmp_path, config)
    attackers: list[socket.socket] = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", gw.port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
            attackers.append(s)
        served = 0
        started = time.monotonic()
        while time.monotonic() - started < 4.5:
            for s in attackers:
                try:
                    s.send(b"X")  # a byte at a time, forever
                except OSError:
                    pass
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}, timeout=5)
            assert reply.status == 200
            served += 1
            time.sleep(0.2)
        assert served >= 10
        closed = 0
        for s in attackers:
            s.settimeout(2)
            try:
                data = s.recv(4096)
                closed += data.startswith(b"HTTP/1.1 408") or data == b""
            except OSError:
                closed += 1
        assert closed == len(attackers)
    finally:
        for s in attackers:
            s.close()
        gw.daemon.stop()


def test_public_health_is_status_only_with_an_ops_token(tmp_path: Path, sim: Simulator) -> None:
    config = gateway_config(tmp_path, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                            ops_token="ops-attack-token")
    gw = start_gateway(tmp_path, config)
    try:
        gw.post("/v1/chat/completions", {"model": "gpt-4.1-2025-04-14", "messages": HI})
        assert http_request("GET", gw.base + "/health").json() == {"status": "ok"}
        detailed = http_request("GET", gw.base + "/health", headers={"Authorization": "Bearer ops-attack-token"})
        assert detailed.json()["resolved_names"] == {"gpt-4.1-2025-04-14": "gpt-4.1"}
        assert http_request("GET", gw.base + "/metrics").status == 401
    finally:
        gw.daemon.stop()
