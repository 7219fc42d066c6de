"""
Attack: configuration values that stop all traffic (issue #15, item 11).

C{timeouts.headers: 0} made every request a 504, C{timeouts.idle: -1} a 500, C{retry.attempts: 0} a 500
from an assert, C{max_body_bytes: -1} a 413 on everything.  Every number is now range-checked: refused at
start and on reload (SIGHUP), with one line naming the key, and the running config stays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from sapproxy.config import ConfigError, load_config

KEY = {"clientid": "c", "clientsecret": "s", "url": "https://auth.example"}
BASE = {"subAccounts": {"a": {"service_key_json": KEY,
                              "deployment_models": {"gpt-4.1": ["https://api.example/v2/inference/deployments/d1"]}}},
        "usage_store": "sqlite:///:memory:"}

BAD = [
    ({"timeouts": {"headers": 0}}, "timeouts.headers"),
    ({"timeouts": {"idle": -1}}, "timeouts.idle"),
    ({"timeouts": {"keepalive": 0}}, "timeouts.keepalive"),
    ({"timeouts": {"connect": 1e9}}, "timeouts.connect"),
    ({"timeouts": {"token": -0.5}}, "timeouts.token"),
    ({"retry": {"attempts": 0}}, "retry.attempts"),
    ({"retry": {"max_wait": -1}}, "retry.max_wait"),
    ({"retry": {"backoff": -1}}, "retry.backoff"),
    ({"retry": {"breaker_failures": 0}}, "retry.breaker_failures"),
    ({"max_body_bytes": -1}, "max_body_bytes"),
    ({"max_body_bytes": 0}, "max_body_bytes"),
    ({"body_budget_bytes": 0}, "body_budget_bytes"),
    ({"body_budget_bytes": (1 << 20) - 1}, "body_budget_bytes"),
    ({"drain_timeout": -3}, "drain_timeout"),
    ({"pool_size": -1}, "pool_size"),
    ({"usage_spool_max_bytes": -1}, "usage_spool_max_bytes"),
    ({"max_stream_event_bytes": 0}, "max_stream_event_bytes"),
    ({"max_response_bytes": 10}, "max_response_bytes"),
    ({"timeouts": {"write_stall": 0}}, "timeouts.write_stall"),
    ({"timeouts": {"request_headers": -1}}, "timeouts.request_headers"),
    ({"simulator": {"port": 70000}}, "simulator.port"),
]


def write(path: Path, extra: dict[str, Any] | str) -> Path:
    path.write_text(extra if isinstance(extra, str) else json.dumps({**BASE, **extra}))
    return path


@pytest.mark.parametrize("extra,where", BAD, ids=[w + "=" + json.dumps(e)[-12:] for e, w in BAD])
def test_out_of_range_numbers_are_refused_naming_the_key(tmp_path: Path, extra: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "config.json", extra))
    message = str(caught.value)
    assert "\n" not in message and f": {where}: expected a number" in message, message


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_non_finite_literals_are_refused(tmp_path: Path, literal: str) -> None:
    text = json.dumps(BASE)[:-1] + ', "drain_timeout": %s}' % literal
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "config.json", text))
    assert ": drain_timeout: expected a number" in str(caught.value)


def test_edges_of_the_ranges_are_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config.json", {
        "timeouts": {"headers": 0.1, "idle": 0.1, "keepalive": 0.1}, "retry": {"attempts": 1, "max_wait": 0,
                                                                            "backoff": 0}, "pool_size": 0,
        "drain_timeout": 0, "max_body_bytes": 1, "body_budget_bytes": 1 << 20}))
    assert config.retry.attempts == 1 and config.timeouts.headers == 0.1 and config.body_budget_bytes == 1 << 20


def test_reload_refuses_an_out_of_range_value_and_keeps_the_running_config(tmp_path: Path) -> None:
    from sapproxy.service import GatewayService

    path = write(tmp_path / "config.json", {"retry": {"attempts": 2}})
    service = GatewayService(load_config(path), MemoryReactorClock(), config_path=path)
    write(path, {"retry": {"attempts": 0}})
    assert service.reload() is False
    assert service.gateway.config.retry.attempts == 2
    write(path, {"retry": {"attempts": 3}})
    assert service.reload() is True
    assert service.gateway.config.retry.attempts == 3
