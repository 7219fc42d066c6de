"""
A real tenant's life, with real twistd daemons: deployments discovered, coming, stopping and vanishing; a stale
deployment URL; a service key the token endpoint rejects; an AI API down at start; the original proxies'
configs; C{sapproxy-admin deployments} and C{resource-groups}.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from daemon_harness import BIN, TOKEN, gateway_config, running, start_gateway, start_simulator, subaccount

pytestmark = pytest.mark.integration

ADMIN = str(BIN / "sapproxy-admin")
FAST = {"refresh_seconds": 1, "jitter": 0, "min_interval": 0.2, "retry_seconds": 0.5}
HI = [{"role": "user", "content": "hi"}]


def _eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _discovering(sim: Any, **changes: Any) -> dict[str, Any]:
    entry = subaccount(sim, {}, **changes)
    del entry["deployment_models"]
    return entry


def _models(gw: Any) -> set[str]:
    return {m["id"] for m in gw.get("/v1/models").json()["data"]}


def test_int_discovered_deployments_come_stop_and_go(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    with running(sim):
        gw = start_gateway(tmp_path, gateway_config(tmp_path, {"tenant": _discovering(sim)}, discovery=FAST))
        with running(gw):
            _eventually(lambda: "gpt-4.1" in _models(gw), "discovered models")
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI})
            assert reply.status == 200, reply
            # A deployment appears...
            sim.control("POST", "/_sim/deployments", {"id": "d-4o", "kind": "openai", "model": "gpt-4o"})
            _eventually(lambda: "gpt-4o" in _models(gw), "a new deployment discovered")
            assert gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": HI}).status == 200
            # ... stops ...
            sim.control("POST", "/_sim/deployments", {"id": "d-4o", "status": "STOPPED"})
            _eventually(lambda: "gpt-4o" not in _models(gw), "a stopped deployment dropped")
            tenant = gw.health()["subaccounts"]["tenant"]
            assert {"id": "d-4o", "model": "gpt-4o", "status": "STOPPED"} in tenant["not_running"]
            assert tenant["deployments"]["gpt-4.1"] == [{"id": "d-gpt41", "status": "RUNNING",
                                                         "origin": "discovered"}]
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": HI})
            assert reply.status == 404 and reply.json()["error"]["code"] == "model_not_found"
            # ... and an AI API outage keeps the last good list.
            sim.arm("ai-api", "503", 1000)
            _eventually(lambda: gw.health()["subaccounts"]["tenant"]["last_discovery_error"], "a discovery error")
            assert gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}).status == 200
            sim.clear_faults()
            _eventually(lambda: gw.health()["subaccounts"]["tenant"]["last_discovery_error"] is None, "recovery")
            metrics = gw.get("/metrics").body.decode()
            assert 'sapproxy_discovery_refreshes_total{outcome="error",subaccount="tenant"}' in metrics


def test_int_stale_deployment_url_fails_over_and_is_logged_once(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    with running(sim):
        account = subaccount(sim, {"gpt-4.1": ["d-gone", "d-gpt41"]})
        gw = start_gateway(tmp_path, gateway_config(tmp_path, {"acct": account}))
        with running(gw):
            for i in range(6):
                reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI})
                assert reply.status == 200, reply
            gone = [r for r in sim.inference_requests() if "/d-gone/" in r["path"]]
            assert len(gone) == 1
            assert gw.log_text().count("deployment d-gone of model gpt-4.1 (subaccount acct) is gone") == 1
            assert "d-gone" in gw.health()["circuit_breakers"]


def test_int_rejected_service_key_is_a_502_and_the_gateway_still_starts(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    with running(sim):
        account = subaccount(sim, clientsecret="not-the-secret")
        gw = start_gateway(tmp_path, gateway_config(tmp_path, {"acct": account}))
        with running(gw):
            _eventually(lambda: "subaccount acct: service key does NOT work" in gw.log_text(), "the start check")
            health = gw.get("/health", headers={})
            assert health.status == 503 and health.json()["status"] == "failing"
            assert health.json()["subaccounts"]["acct"]["credentials"] == "rejected"
            before = sim.stats()["token_requests"]
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI})
            assert reply.status == 502, reply
            assert "upstream authentication failed for subaccount acct" in reply.json()["error"]["message"]
            reply = gw.post("/v1/messages", {"model": "anthropic--claude-4.5-haiku", "max_tokens": 8, "messages": HI},
                            headers={"x-api-key": TOKEN})
            assert reply.status == 502 and reply.json()["error"]["type"] == "api_error", reply
            # Backing off: no token fetch for either request.
            assert sim.stats()["token_requests"] == before
            assert 'sapproxy_upstream_auth_failures_total{subaccount="acct"}' in gw.get("/metrics").body.decode()


def test_int_ai_api_down_at_start_never_stops_the_gateway(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    with running(sim):
        sim.arm("ai-api", "503", 3)
        gw = start_gateway(tmp_path, gateway_config(tmp_path, {"tenant": _discovering(sim)}, discovery=FAST))
        with running(gw):
            _eventually(lambda: "gemini-2.5-pro" in _models(gw), "discovery after the outage")
            assert "deployment discovery for subaccount tenant (resource group default) failed" in gw.log_text()
            reply = gw.post("/v1/chat/completions", {"model": "gemini-2.5-pro", "messages": HI})
            assert reply.status == 200, reply


def test_int_the_original_proxies_configs_start_unchanged(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    with running(sim):
        key = subaccount(sim)["service_key_json"]
        (tmp_path / "subAccount1_service_key.json").write_text(__import__("json").dumps(key))
        # The Flask proxy's config.json.example, its hostLocal included.
        flask = {
            "subAccounts": {"subAccount1": {
                "resource_group": "default", "service_key_json": "subAccount1_service_key.json",
                "deployment_models": {"gpt-4.1": [sim.deployment_url("d-gpt41")]}}},
            "secret_authentication_tokens": [TOKEN], "host": "127.0.0.1", "hostLocal": "127.0.0.1",
            "usage_store": f"sqlite:///{tmp_path / 'usage.db'}",
        }
        gw = start_gateway(tmp_path, flask, name="flask")
        with running(gw):
            assert gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}).status == 200
            assert gw.log_text().count("config: ignoring hostLocal") == 1
        # The FastAPI fork's: model_filters and deployment_ids.
        fork = {
            "model_filters": {"include_filters": ["^gpt-.*", "^claude-.*", ".*-sonnet$"],
                              "exclude_filters": [".*-test$", "^experimental-.*"]},
            "subAccounts": {"subAccount1": {
                "resource_group": "default", "service_key_json": "subAccount1_service_key.json",
                "deployment_ids": {"gpt-4.1": ["d-gpt41"]},
                "deployment_models": {"anthropic--claude-4.5-sonnet": [sim.deployment_url("d-sonnet")],
                                      "gemini-2.5-pro": [sim.deployment_url("d-gemini")]}}},
            "secret_authentication_tokens": [TOKEN], "host": "127.0.0.1",
            "usage_store": f"sqlite:///{tmp_path / 'usage2.db'}",
        }
        gw = start_gateway(tmp_path, fork, name="fork")
        with running(gw):
            assert _models(gw) == {"gpt-4.1", "anthropic--claude-4.5-sonnet"}
            assert gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}).status == 200
            reply = gw.post("/v1/chat/completions", {"model": "gemini-2.5-pro", "messages": HI})
            assert reply.status == 404


def test_int_admin_deployments_and_resource_groups(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    with running(sim):
        sim.control("POST", "/_sim/deployments", {"id": "d-old", "kind": "openai", "model": "gpt-4o",
                                                  "status": "STOPPED"})
        config = gateway_config(tmp_path, {"tenant": _discovering(sim),
                                           "fixed": subaccount(sim, {"gpt-4.1": ["d-gpt41", "d-vanished"]})})
        path = tmp_path / "admin-config.json"
        path.write_text(__import__("json").dumps({**config, "port": 3001}))
        done = subprocess.run([ADMIN, "--config", str(path), "deployments"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["subaccount", "resource_group", "model", "deployment", "status", "gateway",
                                    "origin"]
        assert ["tenant", "default", "gpt-4.1", "d-gpt41", "RUNNING", "served", "discovered"] in \
            [line.split() for line in lines]
        assert ["tenant", "default", "gpt-4o", "d-old", "STOPPED", "not", "served"] in [line.split() for line in lines]
        assert ["fixed", "default", "gpt-4.1", "d-vanished", "NOT", "FOUND", "stale", "(configured)", "configured"] \
            in [line.split() for line in lines]
        done = subprocess.run([ADMIN, "--config", str(path), "resource-groups"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert ["tenant", "default", "PROVISIONED", "yes"] in [line.split() for line in done.stdout.splitlines()]


def test_int_every_outbound_call_goes_through_the_proxy(tmp_path: Path) -> None:
    from connect_proxy import ConnectProxy

    sim = start_simulator(tmp_path)
    with running(sim), ConnectProxy() as proxy:
        config = gateway_config(tmp_path, {"tenant": _discovering(sim)}, discovery=FAST)
        gw = start_gateway(tmp_path, config, env={"HTTP_PROXY": proxy.url, "NO_PROXY": "example.invalid"})
        with running(gw):
            _eventually(lambda: "gpt-4.1" in _models(gw), "discovery through the proxy")
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI, "stream": True})
            assert reply.status == 200, reply
            assert f"outbound calls honour HTTP_PROXY={proxy.url}, NO_PROXY=example.invalid" in gw.log_text()
            paths = {r["path"] for r in sim.requests()}
            assert {"/oauth/token", "/v2/lm/deployments", "/v2/inference/deployments/d-gpt41/chat/completions"} <= paths
            # Every connection the simulator saw came through the proxy's tunnels.
            assert proxy.tunnels and set(proxy.tunnels) == {sim.base.removeprefix("http://")}
        gw2 = start_gateway(tmp_path, config, name="direct", env={"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
        with running(gw2):
            before = len(proxy.tunnels)
            _eventually(lambda: "gpt-4.1" in _models(gw2), "discovery, directly")
            assert gw2.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}).status == 200
            assert len(proxy.tunnels) == before
