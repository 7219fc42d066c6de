"""
The README's Providers example is a config the gateway accepts, with one provider of every kind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sapproxy.config import load_config
from sapproxy.config.providers import KINDS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_providers_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.read_text().split("## Providers", 1)[1].split("\n## ", 1)[0]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "acct1.json").write_text(json.dumps({"clientid": "c", "clientsecret": "s",
                                                              "url": "https://auth.example"}))
    for var in ("OPENAI_API_KEY", "AZURE_OPENAI_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, "x")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(example))
    config = load_config(path)
    assert {p.kind for p in config.providers.values()} == set(KINDS)
    assert config.providers["ollama"].base_url == "http://127.0.0.1:11434/v1"
    assert config.route("gpt-4.1") == ["acct1", "openai"]
