"""
The real Codex CLI (npm C{@openai/codex}, installed by C{scripts/install-codex} into a cache folder) running
C{codex exec} against the gateway daemon with a custom provider on the Responses API, for a GPT, a Claude and a
Gemini model: the simulator asks for a shell command, Codex runs it, and its output comes back through the whole
loop (Codex -> gateway -> upstream -> gateway -> Codex) into the model's final answer.
"""

from __future__ import annotations

import os
import subprocess
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from conftest import ROOT, need
from daemon_harness import TOKEN, Stack, running_stack

from sapproxy.simulator.textgen import thinking_signature

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ["gpt-5", "anthropic--claude-4.5-sonnet", "gemini-2.5-pro"]


@pytest.fixture(scope="module")
def codex() -> str:
    """The Codex CLI's launcher, installed on first use (the test suite's setup installs it too)."""
    need(shutil.which("npm") is not None or os.geteuid() == 0, "npm is needed to install the Codex CLI")
    done = subprocess.run([str(ROOT / "scripts" / "install-codex")], capture_output=True, text=True, timeout=600)
    need(done.returncode == 0, f"the Codex CLI could not be installed: {done.stderr[-500:]}")
    path = done.stdout.strip().splitlines()[-1]
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "codex-cli" in version.stdout, version.stderr
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("codex")) as s:
        yield s


def _config(base: str, model: str) -> str:
    # Plugins and analytics off: the CLI reaches nothing but the gateway.
    return f'''
model = "{model}"
model_provider = "sapproxy"

[model_providers.sapproxy]
name = "sapproxy"
base_url = "{base}/v1"
env_key = "SAPPROXY_API_KEY"
wire_api = "responses"

[features]
plugins = false
remote_plugin = false

[analytics]
enabled = false
'''


@pytest.mark.parametrize("model", MODELS)
def test_int_codex_exec_runs_the_models_shell_command(codex: str, stack: Stack, model: str, tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(_config(stack.base, model))
    work = tmp_path / "work"
    work.mkdir()
    marker = f"contents-of-notes-for-{model}"
    (work / "notes.txt").write_text(marker + "\n")
    # The simulator's directive: call Codex's shell tool with this command (the model would choose one).
    prompt = ('What is in notes.txt? #sim{"tool_name": "exec_command", "tool_args": {"cmd": "cat notes.txt"}}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update(CODEX_HOME=str(home), SAPPROXY_API_KEY=TOKEN, NO_COLOR="1")
    before = len(stack.sim.inference_requests())
    # Reasoning on: the model's reasoning (Claude's signed thinking, GPT's encrypted reasoning) must come back
    # from Codex exactly as it left, in the reasoning items' encrypted_content.
    done = subprocess.run([codex, "exec", "-c", 'model_reasoning_effort="high"', "--skip-git-repo-check",
                           "--sandbox", "danger-full-access", "-C", str(work), prompt],
                          env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    # Codex ran the command the model asked for ...
    assert "cat notes.txt" in done.stderr, done.stderr[-3000:]
    # ... and the command's output went back up and came back in the model's final answer.
    assert "tool said" in done.stdout and marker in done.stdout, done.stdout
    sent = stack.sim.inference_requests()[before:]
    assert len(sent) == 2, [r["path"] for r in sent]
    first, second = (r["body"] for r in sent)
    if model.startswith("gpt"):
        assert all(r["path"].endswith("/responses") for r in sent)
        assert {t["type"] for t in first["tools"]} == {"function"}
        outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
        assert outputs and marker in outputs[-1]["output"]
        # The deployment's own encrypted reasoning went round Codex and back (the simulator verifies it).
        assert any(i.get("type") == "reasoning" and i.get("encrypted_content") for i in second["input"])
    else:
        assert marker in str(second)
    if model.startswith("anthropic"):
        assert first["thinking"]["type"] == "enabled"
        (assistant,) = [m for m in second["messages"] if m["role"] == "assistant"]
        thinking = assistant["content"][0]
        assert thinking["type"] == "thinking" and thinking["signature"] == thinking_signature(thinking["thinking"])
    rows = stack.gateway.wait_usage_rows(2, "model_requested = ? AND endpoint = '/v1/responses'", (model,))
    assert all(r["status"] == 200 and r["completion_tokens"] > 0 for r in rows)
