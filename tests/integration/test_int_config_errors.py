"""
A mistake in the configuration stops C{twistd sapproxy} at once with a non-zero exit and one clear line naming
the file and the key path: never a traceback, never a daemon that starts and 404s later.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import TWISTD, free_port

pytestmark = pytest.mark.integration

GOOD_KEY = {"clientid": "sim-client", "clientsecret": "sim-secret", "url": "http://127.0.0.1:9"}
GOOD_MODELS = {"gpt-4.1": ["http://127.0.0.1:9/v2/inference/deployments/d-gpt41"]}


def _config(**account: Any) -> dict[str, Any]:
    body = {"service_key_json": GOOD_KEY, "deployment_models": GOOD_MODELS, **account}
    return {"subAccounts": {"acct1": body}, "secret_authentication_tokens": ["t"], "port": free_port()}



# name: (config text or None for "no file", expected key path and message in the one line)
CASES: dict[str, tuple[str | None, str]] = {
    "missing_file": (None, "file not found"),
    "bad_json": ('{"subAccounts": {', "invalid JSON at line 1"),
    "missing_clientid": (json.dumps(_config(service_key_json={"clientsecret": "s", "url": "http://127.0.0.1:9"})),
                         "subAccounts.acct1.service_key_json.clientid: missing"),
    "non_http_deployment_url": (
        json.dumps(_config(deployment_models={"gpt-4.1": ["ftp://127.0.0.1/v2/inference/deployments/d"]})),
        "subAccounts.acct1.deployment_models.gpt-4.1[0]: not an http(s) URL: ftp://127.0.0.1/"),
    "empty_url_list": (json.dumps(_config(deployment_models={"gpt-4.1": []})),
                       "subAccounts.acct1.deployment_models.gpt-4.1: expected a non-empty list"),
    "unknown_top_level_key": (json.dumps({**_config(), "prot": 3001}), "prot: unknown key"),
    "service_key_file_not_found": (json.dumps(_config(service_key_json="keys/acct1.json")),
                                   "subAccounts.acct1.service_key_json: file not found: keys/acct1.json"),
    "nested_string_for_number": (json.dumps({**_config(), "timeouts": {"idle": "300"}}), "timeouts.idle: "),
    "nested_string_for_bool": (json.dumps({**_config(), "models": {"gpt-4.1": {"converse": "no"}}}),
                               "models.gpt-4.1.converse: "),
    "nested_float_for_int": (json.dumps({**_config(), "retry": {"attempts": 2.5}}), "retry.attempts: "),
    "unknown_nested_key": (json.dumps({**_config(), "retry": {"atempts": 3}}), "retry.atempts: unknown key"),
}




class Outcome:
    def __init__(self, returncode: int | None, output: str) -> None:
        self.returncode = returncode
        self.output = output


def _run(directory: Path, name: str, text: str | None) -> tuple[Path, Outcome]:
    """Run the daemon on the config; a daemon that starts anyway is stopped as soon as it listens."""
    path = directory / f"{name}.json"
    if text is not None:
        path.write_text(text)
    out_path = directory / f"{name}.out"
    with open(out_path, "wb") as out:
        process = subprocess.Popen([TWISTD, "-n", "--pidfile=", "sapproxy", "--config", str(path)],
                                   cwd=str(directory), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if b"listening on" in out_path.read_bytes():
                break
            time.sleep(0.05)
        returncode = process.poll()
        if returncode is None:
            process.kill()
            process.wait(10)
    output = out_path.read_text(errors="replace")
    if returncode is None:
        output += "\n[the daemon started and was killed by the test]"
    return path, Outcome(returncode, output)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Outcome]]:
    # Each twistd start costs about a second of interpreter start-up: run them side by side.
    directory = tmp_path_factory.mktemp("config-errors")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, directory, name, text) for name, (text, _) in CASES.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_int_config_error_is_one_clear_line(results: dict[str, Any], name: str) -> None:
    path, result = results[name]
    expected = CASES[name][1]
    output = result.output
    assert result.returncode is not None and result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "configuration error" in line]
    assert len(lines) == 1, output
    line = lines[0]
    assert str(path) in line, f"the line names the file: {line}"
    assert expected in line, f"expected {expected!r} in {line!r}"
    # Nothing else of substance: at most twistd's own start-up chatter, no second error line.
    assert [ln for ln in output.splitlines() if "error" in ln.lower()] == [line], output
