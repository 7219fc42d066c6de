"""
A real tenant's failure modes, in memory against the simulator: stale deployments and refused SAP credentials.
"""

from __future__ import annotations

import json

from app_harness import MODELS, SIM, Harness

from sapproxy.config import ServiceKey, SubAccount

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
HI = [{"role": "user", "content": "hi"}]


def _account(*, secret: str = "sim-secret", gpt: tuple[str, ...] = ("d-gpt41",), name: str = "main") -> SubAccount:
    key = ServiceKey(clientid="sim-client", clientsecret=secret, url=SIM, ai_api_url=SIM)
    models = {m: (f"{SIM}/v2/inference/deployments/{d}",) for m, d in MODELS.items()}
    models["gpt-4.1"] = tuple(f"{SIM}/v2/inference/deployments/{d}" for d in gpt)
    return SubAccount(name, key, models)


def _paths(h: Harness, deployment: str) -> list[str]:
    return [r["path"] for r in h.simulator.requests if f"/deployments/{deployment}/" in r["path"]]


def test_stale_deployment_fails_over_at_once_opens_its_breaker_and_asks_for_rediscovery() -> None:
    h = Harness(subaccounts={"main": _account(gpt=("d-gone", "d-gpt41"))})
    asked: list[str] = []
    provider = h.gateway.providers["main"]
    judge = provider.deployment_gone  # type: ignore[attr-defined]

    def spy(deployment: object, message: str) -> bool:
        gone: bool = judge(deployment, message)
        asked.append(message) if gone else None
        return gone

    provider.deployment_gone = spy  # type: ignore[attr-defined]
    for _ in range(4):
        response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
        assert response.code == 200, body
    # One 404 from the stale deployment, then its breaker keeps requests away from it.
    assert len(_paths(h, "d-gone")) == 1 and len(_paths(h, "d-gpt41")) == 4
    assert "d-gone" in {url.rsplit("/", 1)[-1] for url, _ in h.gateway.picker.breakers()}
    assert asked == ["Deployment d-gone not found in resource group default"]
    assert h.rows.rows[0].status == 200 and h.rows.rows[0].attempts == 2
    metrics, _ = h.metrics.render()
    assert b'sapproxy_stale_deployments_total{subaccount="main"} 1.0' in metrics


def test_only_stale_deployments_is_a_502_not_the_clients_404() -> None:
    h = Harness(subaccounts={"main": _account(gpt=("d-gone",))})
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    error = json.loads(body)["error"]
    assert response.code == 502 and "d-gone" in error["message"] and "no longer exists" in error["message"]


def test_client_404_that_is_not_a_gone_deployment_is_passed_through() -> None:
    from sapproxy.upstreams.sap_health import is_stale_deployment

    assert is_stale_deployment("Deployment d-gone not found in resource group default", "d-gone")
    assert not is_stale_deployment("Resource not found", "d-gone")
    assert not is_stale_deployment("Deployment d-other not found", "d-gone")


def test_token_endpoint_rejecting_is_a_502_naming_the_subaccount_in_each_dialect() -> None:
    h = Harness(subaccounts={"main": _account(secret="wrong")})
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    error = json.loads(body)["error"]
    assert response.code == 502, body
    assert "upstream authentication failed for subaccount main" in error["message"]
    assert error["type"] == "api_error" and error["code"] == "upstream_auth_failed"
    assert "wrong" not in body.decode()
    # One token fetch for the request, not one per attempt; the next request backs off without fetching.
    assert h.simulator.stats.token_requests == 1
    response, body = h.post(MESSAGES, {"model": "anthropic--claude-4.5-haiku", "max_tokens": 8, "messages": HI})
    assert response.code == 502
    reply = json.loads(body)
    assert reply["type"] == "error" and reply["error"]["type"] == "api_error"
    assert "upstream authentication failed for subaccount main" in reply["error"]["message"]
    assert h.simulator.stats.token_requests == 1
    response, body = h.get("/health", token=None)
    health = json.loads(body)
    assert response.code == 503 and health["status"] == "failing"
    assert health["subaccounts"]["main"]["credentials"] == "rejected"
    metrics, _ = h.metrics.render()
    assert b'sapproxy_upstream_auth_failures_total{subaccount="main"} 2.0' in metrics


def test_one_refused_subaccount_of_two_fails_over_and_health_is_degraded() -> None:
    h = Harness(subaccounts={"bad": _account(secret="wrong", name="bad"), "good": _account(name="good")})
    for _ in range(3):
        response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
        assert response.code == 200, body
    assert {row.subaccount for row in h.rows.rows} == {"good"}
    response, body = h.get("/health", token=None)
    assert response.code == 200 and json.loads(body)["status"] == "degraded"


def test_a_fresh_token_refused_is_a_502_not_a_401() -> None:
    h = Harness()
    h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    h.simulator.faults.set("d-gpt41", "401", count=2)
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 502, body
    assert "upstream authentication failed for subaccount main" in json.loads(body)["error"]["message"]
    assert h.gateway.providers["main"].tokens.fetches == 2
    assert h.gateway.providers["main"].tokens.state()["credentials"] == "rejected"
    # After the backoff the subaccount is tried again and serves.
    h.clock.advance(400)
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 200, body
    assert h.gateway.providers["main"].tokens.state()["credentials"] == "ok"


def test_a_reload_keeps_the_token_cache_and_its_background_refresh() -> None:
    from sapproxy.registry import build_providers
    from sapproxy.upstreams import ProviderContext

    h = Harness()
    h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    old = h.gateway.providers["main"]
    context = ProviderContext(reactor=h.clock, http=h.upstream, config=h.config, metrics=h.metrics)
    new = build_providers(h.config, context, dict(h.gateway.providers))["main"]
    old.stop()
    assert new.tokens is old.tokens  # type: ignore[attr-defined]
    assert new.tokens.refresh_scheduled
