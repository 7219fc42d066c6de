"""
Listening: a taken port is one clear line and a non-zero exit; with --reuse-port several daemons serve one
port and the kernel spreads the connections across them.
"""

from __future__ import annotations

import json
import subprocess
from typing import Iterator

import pytest
from daemon_harness import (
    TWISTD, Simulator, free_port, gateway_config, http_request, start_simulator, subaccount, TOKEN,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = start_simulator(tmp_path_factory.mktemp("listen-sim"))
    try:
        yield s
    finally:
        s.daemon.stop()


def test_int_port_in_use_and_reuse_port(tmp_path_factory: pytest.TempPathFactory, sim: Simulator) -> None:
    import time

    directory = tmp_path_factory.mktemp("listen")
    port = free_port()
    config = {**gateway_config(directory, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})}), "port": port}
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    workers = [subprocess.Popen([TWISTD, "-n", "--pidfile=", f"--logfile={directory}/w{i}.log", "sapproxy",
                                 "--config", str(path), "--reuse-port"], cwd=directory)
               for i in range(2)]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = [(directory / f"w{i}.log").read_text() if (directory / f"w{i}.log").exists() else ""
                    for i in range(2)]
            if all("listening on" in log for log in logs):
                break
            time.sleep(0.2)
        assert all("listening on" in log for log in logs), logs

        taken = subprocess.run([TWISTD, "-n", "--pidfile=", "sapproxy", "--config", str(path)], cwd=directory,
                               capture_output=True, text=True, timeout=60)
        output = (taken.stdout + taken.stderr).strip()
        assert taken.returncode != 0
        assert f"sapproxy: cannot listen on 127.0.0.1:{port}: Address already in use" in output
        assert "Traceback" not in output

        body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(40):
            # A fresh connection each time: the kernel picks a listener per connection.
            reply = http_request("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                 {"Authorization": f"Bearer {TOKEN}"})
            assert reply.status == 200
        served = [(directory / f"w{i}.log").read_text().count("POST /v1/chat/completions 200") for i in range(2)]
        assert sum(served) == 40 and min(served) > 0, served
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(15)
