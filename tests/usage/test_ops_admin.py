"""
The admin CLI, end to end through C{main([...])}: keys create, list, usage in every format, revoke; and its exit
codes.  SQLite and PostgreSQL (via C{--store}) both.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sapproxy.admin import main, parse_duration
from sapproxy.usage import open_database
from sapproxy.usage.keys import hash_key
from sapproxy.usage.record import COLUMNS

from test_ops_store import db_url, row  # noqa: F401

CONFIG = {
    "subAccounts": {
        "acct1": {
            "service_key_json": {
                "clientid": "id", "clientsecret": "s", "url": "https://auth.example.com",
                "serviceurls": {"AI_API_URL": "https://api.example.com"},
            },
            "deployment_models": {"gpt-4o": ["https://api.example.com/v2/inference/deployments/d1"]},
        }
    }
}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


def seed(url: str) -> None:
    db = open_database(url)
    db.migrate()
    now = time.time()
    rows = [
        row(1, key_name="team-a", model_resolved="gpt-4o", latency_ms=100.0, time=now - 60),
        row(2, key_name="team-a", model_resolved="gpt-4o", latency_ms=300.0, status=502, error_type="upstream",
            time=now - 30),
        row(3, key_name="team-b", model_resolved="claude", subaccount="acct2", latency_ms=50.0, time=now - 10),
        row(4, key_name="team-b", model_resolved="claude", time=now - 3 * 86400),  # outside --since 24h
    ]
    cols = ", ".join(COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    db.run(lambda c: c.cursor().executemany(db.sql(f"INSERT INTO usage_records ({cols}) VALUES ({marks})"),
                                            [r.as_tuple() for r in rows]))
    db.close()


def test_keys_and_usage_via_config(config: Path) -> None:
    """
    The whole flow with the store the config implies (sqlite beside the config file).
    """
    cfg = str(config)
    code, out, err = run("--config", cfg, "keys", "create", "--name", "team-a", "--expires", "30d", "--rpm", "60",
                         "--tpm", "100000", "--models", "gpt-4o, o3")
    assert code == 0, err
    key = out.splitlines()[1]
    assert key.startswith("sk-sap-") and "Authorization: Bearer" in out
    assert (config.parent / "usage.db").exists()

    code, out, _ = run("--config", cfg, "keys", "list")
    assert code == 0
    header, line = out.splitlines()
    assert header.split() == ["name", "key_id", "created", "expires", "limits", "models", "revoked"]
    assert line.startswith("team-a") and hash_key(key)[:12] in line and "rpm=60 tpm=100000" in line
    assert "gpt-4o,o3" in line and line.rstrip().endswith("no") and key not in out

    seed(f"sqlite:///{config.parent / 'usage.db'}")
    code, out, _ = run("--config", cfg, "usage", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["key"] for d in data] == ["team-a", "team-b"]
    a = data[0]
    assert a["requests"] == 2 and a["errors"] == 1 and a["prompt_tokens"] == 11 + 12
    assert a["completion_tokens"] == 10 and a["cached_tokens"] == 4
    assert a["latency_p50_ms"] == 100.0 and a["latency_p99_ms"] == 300.0

    code, out, _ = run("--config", cfg, "usage", "--by", "model", "--format", "csv", "--since", "7d")
    assert code == 0
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert {r["model"]: int(r["requests"]) for r in parsed} == {"gpt-4o": 2, "claude": 2}

    code, out, _ = run("--config", cfg, "usage", "--by", "subaccount")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["subaccount", "requests", "prompt_tokens"]
    assert any(l.startswith("acct2 ") for l in out.splitlines())

    code, out, _ = run("--config", cfg, "usage", "--by", "day", "--format", "json", "--since", "30d")
    assert code == 0 and sum(d["requests"] for d in json.loads(out)) == 4

    code, out, _ = run("--config", cfg, "usage", "--raw", "--format", "json")
    raw = json.loads(out)
    assert code == 0 and [r["request_id"] for r in raw] == ["req-1", "req-2", "req-3"]
    assert set(raw[0]) == set(COLUMNS) and raw[0]["stream"] is True

    code, out, _ = run("--config", cfg, "usage", "--raw", "--format", "csv")
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 3

    code, out, _ = run("--config", cfg, "keys", "revoke", "team-a")
    assert code == 0 and "revoked" in out
    code, out, _ = run("--config", cfg, "keys", "list")
    assert not out.splitlines()[1].rstrip().endswith(" no")


def test_keys_and_usage_via_store_url(db_url: str, config: Path) -> None:  # noqa: F811
    code, out, err = run("--config", str(config), "--store", db_url, "keys", "create", "--name", "x")
    assert code == 0, err
    seed(db_url)
    code, out, _ = run("--store", db_url, "--config", str(config), "usage", "--format", "json", "--by", "model")
    assert code == 0 and {d["model"]: d["requests"] for d in json.loads(out)} == {"gpt-4o": 2, "claude": 1}
    assert run("--store", db_url, "keys", "revoke", "x")[0] == 0


def test_errors_and_exit_codes(config: Path, tmp_path: Path) -> None:
    cfg = str(config)
    assert run("--config", cfg, "keys", "create", "--name", "dup")[0] == 0
    code, out, err = run("--config", cfg, "keys", "create", "--name", "dup")
    assert code == 1 and err.count("\n") == 1 and "already exists" in err
    code, _, err = run("--config", cfg, "keys", "revoke", "ghost")
    assert code == 1 and "no key named 'ghost'" in err
    code, _, err = run("--config", str(tmp_path / "missing.json"), "keys", "list")
    assert code == 1 and "file not found" in err
    assert run("--config", cfg, "keys", "create", "--name", "y", "--expires", "soon")[0] == 2
    assert run("--config", cfg, "keys", "create", "--name", "y", "--rpm", "0")[0] == 2
    assert run("--config", cfg, "usage", "--by", "colour")[0] == 2
    assert run("--config", cfg)[0] == 2
    assert run("--config", cfg, "keys")[0] == 2
    assert run("--help")[0] == 0
    code, _, err = run("--store", "mysql://nope", "keys", "list")
    assert code == 1 and "unsupported usage store" in err
    code, _, err = run("--store", "postgresql://nobody@127.0.0.1:1/x", "keys", "list")
    assert code == 1 and err.count("\n") == 1


def test_empty_usage(config: Path) -> None:
    code, out, _ = run("--config", str(config), "usage")
    assert code == 0 and out.strip() == "(none)"
    code, out, _ = run("--config", str(config), "usage", "--format", "json")
    assert json.loads(out) == []


def test_parse_duration() -> None:
    assert parse_duration("30d") == 30 * 86400 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(Exception):
        parse_duration("3 days")


def test_expired_key_listed_as_expired(config: Path, monkeypatch: Any) -> None:
    assert run("--config", str(config), "keys", "create", "--name", "short", "--expires", "1s")[0] == 0
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 5)
    assert "(expired)" in run("--config", str(config), "keys", "list")[1]
