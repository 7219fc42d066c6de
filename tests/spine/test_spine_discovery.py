"""
Deployment discovery against the simulated AI API: deployments that come, stop and go; an AI API that is down;
the last good list kept; start-up never blocked; model filters; what /health and /v1/models show.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from app_harness import SIM, Harness
from treq.testing import StubTreq

from sapproxy.config import GatewayConfig, ModelFilters, ServiceKey, SubAccount
from sapproxy.models import ModelCatalog
from sapproxy.upstreams.sap_discovery import follow_models
from sapproxy.simulator.config import DeploymentSpec
from sapproxy.web.app import build_app
from sapproxy.web.frame import ServicesRef

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def _discovering(name: str = "main", group: str = "default") -> SubAccount:
    key = ServiceKey(clientid="sim-client", clientsecret="sim-secret", url=SIM, ai_api_url=SIM)
    return SubAccount(name, key, {}, resource_group=group, discover=True)


def _started(**changes: Any) -> Harness:
    """
    A harness whose catalog follows discovery, as the daemon's does, with the gateway started.
    """
    changes.setdefault("subaccounts", {"main": _discovering()})
    h = Harness(**changes)
    _follow(h)
    h.gateway.start()
    _settle(h)
    return h


def _follow(h: Harness) -> None:
    """
    The catalog follows what the providers serve, as in the daemon.
    """
    providers = h.gateway.providers.values()
    catalog = ModelCatalog(_names(h), {}, {}, strict=h.config.strict_model_names)
    follow_models(providers, lambda: catalog.update(_names(h)))
    h.services = attrs.evolve(h.services, catalog=catalog)
    h.client = StubTreq(build_app(ServicesRef(h.services)).resource())


def _names(h: Harness) -> list[str]:
    return sorted({m for p in h.gateway.providers.values() for m in p.models()})


def _main(h: Harness) -> Any:
    return h.gateway.providers["main"]


def _settle(h: Harness, seconds: float = 0.0) -> None:
    h.clock.advance(seconds)
    for _ in range(20):
        h.flush()
        h.clock.advance(0)


def _health(h: Harness) -> dict[str, Any]:
    _, body = h.get("/health", token=None)
    return json.loads(body)  # type: ignore[no-any-return]


def test_discovers_running_foundation_models_and_serves_them() -> None:
    h = _started()
    assert "gpt-4.1" in _names(h) and "anthropic--claude-4.5-sonnet" in _names(h)
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 200, body
    listing = [r for r in h.simulator.requests if r["path"] == "/v2/lm/deployments"]
    assert listing[0]["headers"]["ai-resource-group"] == "default"
    assert listing[0]["query"] == {"scenarioId": "foundation-models"}
    account = _health(h)["subaccounts"]["main"]
    assert account["discovery"] == "on" and account["last_discovery_error"] is None
    assert account["deployments"]["gpt-4.1"] == [{"id": "d-gpt41", "status": "RUNNING", "origin": "discovered"}]
    _, body = h.get("/v1/models")
    assert "gemini-2.5-flash" in {m["id"] for m in json.loads(body)["data"]}


def test_deployments_that_appear_stop_and_vanish() -> None:
    h = _started()
    refresh = h.config.discovery.refresh_seconds * 1.3
    h.simulator.deployments.put("d-gpt41-b", DeploymentSpec("openai", "gpt-4.1"))
    h.simulator.deployments.put("d-4o", DeploymentSpec("openai", "gpt-4o"))
    _settle(h, refresh)
    assert _main(h).discovery.models["gpt-4.1"] == (f"{SIM}/v2/inference/deployments/d-gpt41",
                                                              f"{SIM}/v2/inference/deployments/d-gpt41-b")
    response, _ = h.post(CHAT, {"model": "gpt-4o", "messages": HI})
    assert response.code == 200
    # d-gpt41 stops: the next request that meets it fails over at once and triggers a rediscovery.
    h.simulator.deployments.put("d-gpt41", DeploymentSpec("openai", "gpt-4.1"), status="STOPPED")
    _settle(h, h.config.discovery.min_interval + 1)
    before = len([r for r in h.simulator.requests if r["path"] == "/v2/lm/deployments"])
    for _ in range(3):
        response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
        assert response.code == 200, body
    _settle(h)
    assert len([r for r in h.simulator.requests if r["path"] == "/v2/lm/deployments"]) == before + 1
    assert _main(h).discovery.models["gpt-4.1"] == (f"{SIM}/v2/inference/deployments/d-gpt41-b",)
    account = _health(h)["subaccounts"]["main"]
    assert {"id": "d-gpt41", "model": "gpt-4.1", "status": "STOPPED"} in account["not_running"]
    # gpt-4o vanishes: after the next refresh it is no longer served, and the client hears a 404 in its dialect.
    h.simulator.deployments.remove("d-4o")
    _settle(h, refresh)
    response, body = h.post(CHAT, {"model": "gpt-4o", "messages": HI})
    assert response.code == 404 and json.loads(body)["error"]["code"] == "model_not_found"


def test_ai_api_outage_keeps_the_last_good_list_and_recovers() -> None:
    h = _started()
    served = dict(_main(h).discovery.models)
    h.simulator.faults.set("ai-api", "503", count=100)
    _settle(h, h.config.discovery.refresh_seconds * 1.3)
    assert dict(_main(h).discovery.models) == served
    account = _health(h)["subaccounts"]["main"]
    assert "HTTP 503" in account["last_discovery_error"]
    response, _ = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 200
    h.simulator.faults.clear()
    _settle(h, h.config.discovery.retry_seconds * 1.3)
    assert _health(h)["subaccounts"]["main"]["last_discovery_error"] is None
    metrics, _ = h.metrics.render()
    assert b'sapproxy_discovery_refreshes_total{outcome="error",subaccount="main"}' in metrics


def test_start_with_the_ai_api_down_serves_once_it_is_back() -> None:
    h = Harness(subaccounts={"main": _discovering()})
    h.simulator.faults.set("ai-api", "503", count=1)
    _follow(h)
    h.gateway.start()
    _settle(h)
    assert _names(h) == []
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 404
    _settle(h, h.config.discovery.retry_seconds * 1.3)
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 200, body


def test_model_filters_apply_to_discovered_names() -> None:
    h = _started(model_filters=ModelFilters(include_filters=("^gpt-", "claude"), exclude_filters=("haiku",)))
    names = _names(h)
    assert "gpt-4.1" in names and "anthropic--claude-4.5-sonnet" in names
    assert "anthropic--claude-4.5-haiku" not in names and "gemini-2.5-pro" not in names and "o3" not in names


def test_configured_and_discovered_combine_with_their_origin() -> None:
    key = ServiceKey(clientid="sim-client", clientsecret="sim-secret", url=SIM, ai_api_url=SIM)
    account = SubAccount("main", key, {"my-gpt": (f"{SIM}/v2/inference/deployments/d-gpt41",)}, discover=True)
    h = _started(subaccounts={"main": account})
    deployments = _health(h)["subaccounts"]["main"]["deployments"]
    assert deployments["my-gpt"] == [{"id": "d-gpt41", "status": "RUNNING", "origin": "configured"}]
    assert deployments["gpt-4.1"][0]["origin"] == "discovered"


def test_wrong_resource_group_is_a_discovery_error_not_a_crash() -> None:
    h = _started(subaccounts={"main": _discovering(group="nope")})
    assert _names(h) == []
    assert "HTTP 404" in _health(h)["subaccounts"]["main"]["last_discovery_error"]


def test_no_discovery_when_deployment_models_are_configured() -> None:
    h = Harness()
    h.gateway.start()
    _settle(h)
    assert not [r for r in h.simulator.requests if r["path"].startswith("/v2/lm/")]
    assert isinstance(h.config, GatewayConfig)
