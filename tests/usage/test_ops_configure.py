"""
C{sapproxy-admin configure CLIENT}: each client's file, parsed as the client would parse it, names this
gateway and the models it serves; C{--write} puts it where the client reads it without losing what is there.
"""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import pytest
import yaml

from sapproxy.admin import main

ROOT = Path(__file__).resolve().parents[2]
CHAT = ["anthropic--claude-4.1-opus", "anthropic--claude-4.5-haiku", "anthropic--claude-4.5-sonnet",
        "gemini-2.5-flash", "gemini-2.5-pro", "gpt-4.1", "gpt-5", "o3"]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(ROOT / "config.json"), *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def file_text(out: str) -> str:
    """The printed file: the lines after the '# ~/path' heading, up to the blank line before the notes."""
    lines = out.splitlines()
    assert lines[0].startswith("# ~/")
    return "\n".join(lines[1:len(lines) - 1 - lines[::-1].index("")])


def test_claude_code_settings() -> None:
    code, out, _ = run("configure", "claude")
    assert code == 0 and out.startswith("# ~/.claude/settings.json\n")
    settings = json.loads(file_text(out))
    env = settings["env"]
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3001"
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "anthropic--claude-4.5-sonnet"
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "anthropic--claude-4.1-opus"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "anthropic--claude-4.5-haiku"
    assert settings["apiKeyHelper"] == "printenv SAPPROXY_API_KEY" and "ANTHROPIC_AUTH_TOKEN" not in env
    assert "export SAPPROXY_API_KEY=" in out
    code, out, _ = run("configure", "claude", "--key", "sk-sap-abc")
    settings = json.loads(file_text(out))
    assert settings["env"]["ANTHROPIC_AUTH_TOKEN"] == "sk-sap-abc" and "apiKeyHelper" not in settings


def test_codex_config_toml() -> None:
    code, out, err = run("configure", "codex")
    assert code == 0
    config = tomllib.loads(file_text(out))
    assert config["model_provider"] == "sapproxy" and config["model"] == "gpt-5"
    provider = config["model_providers"]["sapproxy"]
    assert provider == {"name": "SAP AI Core via sapproxy", "base_url": "http://127.0.0.1:3001/v1",
                        "env_key": "SAPPROXY_API_KEY", "wire_api": "responses"}
    assert all(m in out for m in CHAT) and "text-embedding-3-small" not in out
    # Codex speaks only the Responses API: the command says so while this gateway lacks that route.
    assert ("/v1/responses" in err) == ("does not serve" in err)


def test_gemini_cli_env() -> None:
    code, out, _ = run("configure", "gemini", "--key", "sk-sap-g")
    assert code == 0
    env = dict(line.split("=", 1) for line in file_text(out).splitlines() if not line.startswith("#"))
    assert env == {"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:3001", "GEMINI_API_KEY": "sk-sap-g",
                   "GEMINI_MODEL": "gemini-2.5-pro"}
    code, out, _ = run("configure", "gemini")
    assert "GEMINI_API_KEY" not in file_text(out) and "export GEMINI_API_KEY=" in out


def test_opencode_json() -> None:
    code, out, _ = run("configure", "opencode")
    config = json.loads(file_text(out))
    assert config["$schema"] == "https://opencode.ai/config.json"
    openai, claude = config["provider"]["sapproxy"], config["provider"]["sapproxy-claude"]
    assert openai["npm"] == "@ai-sdk/openai-compatible" and claude["npm"] == "@ai-sdk/anthropic"
    for provider in (openai, claude):
        assert provider["options"] == {"baseURL": "http://127.0.0.1:3001/v1", "apiKey": "{env:SAPPROXY_API_KEY}"}
    assert sorted([*openai["models"], *claude["models"]]) == CHAT
    assert set(claude["models"]) == {m for m in CHAT if m.startswith("anthropic--")}
    assert config["model"] == "sapproxy-claude/anthropic--claude-4.5-sonnet"


def test_aider_conf_yml() -> None:
    code, out, _ = run("configure", "aider", "--key", "sk-sap-a", "--url", "https://llm.example.com")
    conf = yaml.safe_load(file_text(out))
    assert conf["openai-api-base"] == "https://llm.example.com/v1" and conf["openai-api-key"] == "sk-sap-a"
    assert conf["model"] == "openai/anthropic--claude-4.5-sonnet"
    assert conf["weak-model"] == "openai/anthropic--claude-4.5-haiku"
    assert sorted(a.split(":", 1)[1] for a in conf["alias"]) == sorted(f"openai/{m}" for m in CHAT)


def test_write_merges_json_and_keeps_other_files(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"theme": "dark", "env": {"DISABLE_TELEMETRY": "1"}}))
    code, out, _ = run("configure", "claude", "--key", "sk-sap-w", "--write", "--home", str(tmp_path))
    assert code == 0 and f"wrote {settings}" in out
    merged = json.loads(settings.read_text())
    assert merged["theme"] == "dark" and merged["env"]["DISABLE_TELEMETRY"] == "1"
    assert merged["env"]["ANTHROPIC_AUTH_TOKEN"] == "sk-sap-w"
    assert settings.stat().st_mode & 0o077 == 0  # a file holding a key is the user's alone

    codex = tmp_path / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text('model = "mine"\n')
    code, out, _ = run("configure", "codex", "--write", "--home", str(tmp_path))
    assert code == 0
    assert (tmp_path / ".codex" / "config.toml.sapproxy-backup").read_text() == 'model = "mine"\n'
    assert tomllib.loads(codex.read_text())["model_provider"] == "sapproxy"

    broken = tmp_path / ".config" / "opencode" / "opencode.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    code, _, err = run("configure", "opencode", "--write", "--home", str(tmp_path))
    assert code == 1 and "is not valid JSON" in err and broken.read_text() == "{not json"


def test_unknown_client_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run("configure", "vim")
    assert code == 2 and "invalid choice: 'vim'" in capsys.readouterr().err


@pytest.mark.parametrize("client", ["claude", "gemini"])
def test_a_gateway_without_the_clients_family_says_so(tmp_path: Path, client: str) -> None:
    raw = json.loads((ROOT / "config.json").read_text())
    models = raw["subAccounts"]["simulated"]["deployment_models"]
    raw["subAccounts"]["simulated"]["deployment_models"] = {"gpt-4.1": models["gpt-4.1"]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    out, err = io.StringIO(), io.StringIO()
    assert main(["--config", str(path), "configure", client], stdout=out, stderr=err) == 1
    assert "serves no" in err.getvalue()
