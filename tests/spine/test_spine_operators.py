"""
The operator-facing pieces that need no daemon: reason phrases, the JSON log's time format and destination,
the simulator's origin written once in the config, the start-up summary and when the auth warning is given,
and the metric label of a request no route matched.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from sapproxy.config import ConfigError, load_config
from sapproxy.logs import JSONLineObserver, log_destination, rfc3339
from sapproxy.models import ModelCatalog
from sapproxy.startup import announce, client_key_sources, summary_lines
from sapproxy.web.reasons import reason_phrase
from sapproxy.web.requestlog import UNMATCHED, endpoint_label

ROOT = Path(__file__).resolve().parents[2]
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.parametrize("status, phrase", [
    (200, b"OK"), (429, b"Too Many Requests"), (422, b"Unprocessable Entity"), (413, b"Request Entity Too Large"),
    (529, b"Overloaded"), (499, b"Client Closed Request"), (298, b"Success"), (597, b"Server Error"),
])
def test_every_status_has_a_reason_phrase(status: int, phrase: bytes) -> None:
    assert reason_phrase(status) == phrase


def test_log_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1796534628.6434) == "2026-12-06T05:23:48.643Z"
    assert rfc3339(1796534628.9996) == "2026-12-06T05:23:49.000Z"
    out = io.StringIO()
    observer = JSONLineObserver(out)
    # A legacy twisted.python.log event carries its own float "time": it must not make a second time format.
    observer({"log_time": 1796534628.5, "log_level": LogLevel.info, "log_namespace": "x", "log_format": "m",
              "time": 1796534628.5, "level": "shadowed", "message": "shadowed too"})
    record = json.loads(out.getvalue())
    assert record["time"] == "2026-12-06T05:23:48.500Z" and RFC3339_MS.match(record["time"])
    assert (record["level"], record["message"]) == ("info", "m")
    assert (record["field_level"], record["field_message"]) == ("shadowed", "shadowed too")
    assert "field_time" not in record and list(record).count("time") == 1


def test_log_destination_follows_twistd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAPPROXY_LOG_FILE", raising=False)
    assert log_destination("/var/log/gw.json", nodaemon=False) == "/var/log/gw.json"
    assert log_destination("/var/log/gw.json", nodaemon=True) == "/var/log/gw.json"
    assert log_destination("", nodaemon=True) is None  # -n: standard output (containers)
    assert log_destination("-", nodaemon=True) is None
    assert log_destination("", nodaemon=False) == "twistd.log"  # twistd's own default for a daemon
    with pytest.raises(SystemExit, match="Daemons cannot log to stdout"):
        log_destination("-", nodaemon=False)
    monkeypatch.setenv("SAPPROXY_LOG_FILE", "/tmp/override.json")
    assert log_destination("/var/log/gw.json", nodaemon=False) == "/tmp/override.json"


def test_shipped_config_follows_the_simulator_port(tmp_path: Path) -> None:
    raw = json.loads((ROOT / "config.json").read_text())
    assert json.dumps(raw).count("3099") == 1, "the simulator's port is written once"
    shipped = load_config(ROOT / "config.json")
    account = shipped.subaccounts["simulated"]
    assert account.service_key.url == account.service_key.ai_api_url == "http://127.0.0.1:3099"
    raw["simulator"] = {"port": 4123}
    moved = tmp_path / "config.json"
    moved.write_text(json.dumps(raw))
    account = load_config(moved).subaccounts["simulated"]
    assert account.service_key.url == "http://127.0.0.1:4123"
    assert account.service_key.ai_api_url == "http://127.0.0.1:4123"
    urls = [u for us in account.deployment_models.values() for u in us]
    assert len(urls) == 9 and all(u.startswith("http://127.0.0.1:4123/v2/inference/deployments/d-") for u in urls)


def test_simulator_origin_without_a_simulator_is_a_clear_error(tmp_path: Path) -> None:
    raw = json.loads((ROOT / "config.json").read_text())
    del raw["simulator"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"config.json: simulator: missing, but \$\{SIMULATOR\} is used"):
        load_config(path)


class FakeRing:
    def __init__(self, n: int, loaded: bool = True) -> None:
        self.n, self.loaded = n, loaded

    def __len__(self) -> int:
        return self.n


class FakeAuth:
    def __init__(self, disabled: bool) -> None:
        self.disabled = disabled


def _events() -> tuple[list[dict[str, Any]], Any]:
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    return seen, seen.append


def test_startup_summary_names_models_deployments_key_check_and_key_sources(tmp_path: Path) -> None:
    raw = json.loads((ROOT / "config.json").read_text())
    raw["subAccounts"]["simulated"]["deployment_models"]["gpt-5"].append(
        "https://elsewhere.example/v2/inference/deployments/d-stray")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    config = load_config(path)
    catalog = ModelCatalog([m for a in config.subaccounts.values() for m in a.deployment_models], config.models,
                           config.aliases)
    lines = summary_lines(config, catalog)
    assert lines[0].startswith("subaccount simulated (resource group default): service key client sim-client via "
                               "http://127.0.0.1:3099 (CHECK: deployments on elsewhere.example, not on the AI API "
                               "host 127.0.0.1:3099)")
    assert "  gpt-5: Azure OpenAI, 2 deployments (d-gpt5, d-stray)" in lines
    assert "  anthropic--claude-4.5-sonnet: Bedrock (Anthropic), 1 deployment (d-sonnet)" in lines
    assert "  gemini-2.5-pro: Vertex AI (Gemini), 1 deployment (d-gemini)" in lines
    assert client_key_sources(config, FakeRing(2)) == (
        "client keys: 1 configured token (secret_authentication_tokens); 2 usable keys in the sqlite key store "
        "(sapproxy-admin keys)")


@pytest.mark.parametrize("disabled", [True, False])
def test_auth_warning_only_when_nothing_can_authenticate(disabled: bool) -> None:
    config = load_config(ROOT / "config.json")
    catalog = ModelCatalog(list(config.subaccounts["simulated"].deployment_models), {}, {})
    seen, observer = _events()
    try:
        announce(config, catalog, FakeAuth(disabled), FakeRing(0))
    finally:
        globalLogPublisher.removeObserver(observer)
    warnings = [e for e in seen if e.get("log_level") == LogLevel.warn and "AUTHENTICATION IS DISABLED" in
                e.get("log_format", "")]
    assert len(warnings) == (1 if disabled else 0)
    assert any("client keys:" in e.get("log_format", "") for e in seen)


def test_unmatched_paths_share_one_metric_label() -> None:
    assert endpoint_label("/v1/chat/completions", 405) == "/v1/chat/completions"
    assert endpoint_label("/some/client/typo", 404) == UNMATCHED
    assert endpoint_label("/x" * 100, 405) == UNMATCHED


def test_probes_and_scrapes_are_quiet_unless_refused() -> None:
    from sapproxy.metrics import GatewayMetrics
    from sapproxy.web.requestlog import request_done

    metrics = GatewayMetrics()
    seen, observer = _events()
    try:
        request_done(metrics, "GET", "/health", 200, 0.001)
        request_done(metrics, "GET", "/metrics", 200, 0.001)
        request_done(metrics, "GET", "/metrics", 401, 0.001)
        request_done(metrics, "GET", "/nope", 404, 0.001)
    finally:
        globalLogPublisher.removeObserver(observer)
    lines = [e["log_format"] for e in seen if e.get("log_namespace") == "sapproxy.request"]
    assert [line.split(" ")[:3] for line in lines] == [["GET", "/metrics", "401"], ["GET", "/nope", "404"]]
    text = metrics.render()[0].decode()
    assert 'endpoint="/metrics",model="unknown",status="401"' in text and 'status="200"' not in text
