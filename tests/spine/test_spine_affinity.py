"""
Session affinity: one session, one deployment while it is healthy; the same choice in every process; failover.
"""

from __future__ import annotations

from app_harness import MODELS, SIM, Harness

from sapproxy.config import AffinitySettings, ServiceKey, SubAccount
from sapproxy.dispatch.affinity import route, session_key
from sapproxy.dispatch.picker import Deployment
from sapproxy.simulator.config import DeploymentSpec

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
IDS = ("d-gpt41", "d-gpt41-b", "d-gpt41-c")


def _harness(**changes: object) -> Harness:
    key = ServiceKey(clientid="sim-client", clientsecret="sim-secret", url=SIM)
    models = {m: (f"{SIM}/v2/inference/deployments/{d}",) for m, d in MODELS.items()}
    models["gpt-4.1"] = tuple(f"{SIM}/v2/inference/deployments/{d}" for d in IDS)
    h = Harness(subaccounts={"main": SubAccount("main", key, models)}, **changes)
    for extra in IDS[1:]:
        h.simulator.deployments.put(extra, DeploymentSpec("openai", "gpt-4.1"))
    return h


def _served(h: Harness, headers: dict[str, str] | None = None, **body: object) -> str:
    response, content = h.post(CHAT, {"model": "gpt-4.1", "messages": HI, **body}, headers=headers)
    assert response.code == 200, content
    return str(h.rows.rows[-1].deployment)


def test_one_session_sticks_to_one_deployment_and_sessions_spread() -> None:
    h = _harness()
    seen = {_served(h, {"X-Claude-Code-Session-Id": "session-A"}) for _ in range(6)}
    assert len(seen) == 1
    # Without a session key the round robin spreads requests.
    assert len({_served(h) for _ in range(3)}) == 3
    spread = {_served(h, {"X-Claude-Code-Session-Id": f"s-{i}"}) for i in range(24)}
    assert len(spread) >= 2
    metrics, _ = h.metrics.render()
    assert b'sapproxy_session_affinity_total{outcome="hit"} 30.0' in metrics


def test_every_process_makes_the_same_choice() -> None:
    for i in range(8):
        key = f"codex-{i}"
        a, b = _harness(), _harness()
        b.post(CHAT, {"model": "gpt-4.1", "messages": HI})  # a different round-robin position
        assert _served(a, {"session-id": key}) == _served(b, {"session-id": key})


def test_prompt_cache_key_and_a_configured_header_are_session_keys() -> None:
    h = _harness(session_affinity=AffinitySettings(header="X-My-Session"))
    assert len({_served(h, prompt_cache_key="thread-7") for _ in range(4)}) == 1
    assert len({_served(h, {"X-My-Session": "mine"}) for _ in range(4)}) == 1
    off = _harness(session_affinity=AffinitySettings(enabled=False))
    assert len({_served(off, {"X-Claude-Code-Session-Id": "x"}) for _ in range(3)}) == 3


def test_a_failing_deployment_moves_its_sessions_and_they_come_back() -> None:
    h = _harness()
    headers = {"X-Claude-Code-Session-Id": "session-B"}
    home = _served(h, headers)
    h.simulator.faults.set(home, "500", count=100)
    moved = {_served(h, headers) for _ in range(5)}
    assert home not in moved and len(moved) == 1
    metrics, _ = h.metrics.render()
    assert b'sapproxy_session_affinity_total{outcome="move"} 5.0' in metrics
    h.simulator.faults.clear()
    h.clock.advance(h.config.retry.cooldown + 1)
    assert _served(h, headers) == home


def test_rendezvous_moves_only_the_sessions_of_a_deployment_that_left() -> None:
    key = ServiceKey(clientid="c", clientsecret="s", url=SIM)
    account = SubAccount("a", key, {})
    deployments = [Deployment(account, f"{SIM}/v2/inference/deployments/d{i}", "m") for i in range(5)]
    before = {f"s{i}": route(f"s{i}", deployments, lambda d: True).order[0] for i in range(200)}
    gone = deployments[2]
    after = {s: route(s, deployments, lambda d: d is not gone).order[0] for s in before}
    for s, was in before.items():
        assert (after[s] == was) == (was is not gone)


def test_session_key_sources() -> None:
    settings = AffinitySettings()
    headers = {b"session_id": b"abc"}
    assert session_key(headers.get, {}, settings) == "abc"
    assert session_key({}.get, {"prompt_cache_key": "p"}, settings) == "p"
    assert session_key({}.get, {}, settings) is None
