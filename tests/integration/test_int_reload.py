"""
SIGHUP reloads the config: new tokens and models take effect, a stream under way is not dropped, and a bad
new config is refused with a clear log line while the old one keeps serving.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest
from daemon_harness import (
    TOKEN, RawStream, Simulator, directive, gateway_config, start_gateway, start_simulator, subaccount,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = start_simulator(tmp_path_factory.mktemp("reload-sim"))
    try:
        yield s
    finally:
        s.daemon.stop()


def _wait_for(check: Any, timeout: float = 5.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    return check()


def test_int_sighup_reload(tmp_path_factory: pytest.TempPathFactory, sim: Simulator) -> None:
    directory = tmp_path_factory.mktemp("reload")
    config = gateway_config(directory, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})})
    gateway = start_gateway(directory, config)
    try:
        hi = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
        assert gateway.post("/v1/chat/completions", hi).status == 200
        stream = RawStream(gateway, "/v1/chat/completions",
                           {**hi, "stream": True, "messages": [{"role": "user", "content": "long " +
                                                                 directive(events=40, delay=0.05)}]})
        stream.read_until(b"data: ", 2)

        # A new model and a new token; the old token goes.
        new = dict(gateway.config)
        new["subAccounts"] = {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41", "gemini-2.5-pro": "d-gemini"})}
        new["secret_authentication_tokens"] = ["sk-after-reload"]
        gateway.config_path.write_text(json.dumps(new))
        gateway.daemon.process.send_signal(1)
        assert _wait_for(lambda: "config reloaded" in gateway.log_text()), gateway.log_text()[-2000:]

        after = {"Authorization": "Bearer sk-after-reload"}
        reply = gateway.post("/v1/chat/completions", {**hi, "model": "gemini-2.5-pro"}, headers=after)
        assert reply.status == 200, reply
        assert gateway.post("/v1/chat/completions", hi, headers={"Authorization": f"Bearer {TOKEN}"}).status == 401

        # The stream that started before the reload runs to its end.
        stream.read_until(b"data: [DONE]", 1)

        # A broken config is refused; the running one stays.
        gateway.config_path.write_text('{"subAccounts": {"simulated": {"deployment_models": {}}}}')
        gateway.daemon.process.send_signal(1)
        assert _wait_for(lambda: "config reload refused" in gateway.log_text())
        line = next(l for l in gateway.log_text().splitlines() if "config reload refused" in l)
        assert "subAccounts.simulated" in line
        assert gateway.post("/v1/chat/completions", hi, headers=after).status == 200
        assert "Traceback" not in gateway.log_text()
    finally:
        gateway.daemon.stop()


def test_int_body_over_the_limit_is_413_without_being_read(tmp_path_factory: pytest.TempPathFactory,
                                                             sim: Simulator) -> None:
    import socket

    directory = tmp_path_factory.mktemp("limit")
    config = gateway_config(directory, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})}, max_body_bytes=1000)
    gateway = start_gateway(directory, config)
    try:
        # Declared 50 MB, only the headers sent: the answer comes before the body.
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"x-api-key: " + TOKEN.encode() + b"\r\nContent-Length: 50000000\r\n\r\n" + b"{" * 2000)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b'"request_too_large"' in answer and b"50000000" in answer
        big = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "x" * 5000}]}
        reply = gateway.post("/v1/chat/completions", big)
        assert reply.status == 413 and reply.json()["error"]["type"] == "invalid_request_error"
    finally:
        gateway.daemon.stop()
