"""
Two subaccounts serving the same model: requests alternate between them, each subaccount gets its own token once
and reuses it, and the upstream calls carry the headers SAP AI Core requires, with each subaccount's own resource
group.

Each subaccount sits on its own simulator process, so the resource groups can differ (a simulator accepts one
resource group) and the token requests of each subaccount are counted apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from daemon_harness import Gateway, Simulator, gateway_config, start_gateway, start_simulator, subaccount

pytestmark = pytest.mark.integration

SIM_B_CONFIG = {
    "resource_group": "rg-b",
    "deployments": {"d-gpt41-b": {"kind": "openai", "model": "gpt-4.1"}},
}


class Pair:
    def __init__(self, a: Simulator, b: Simulator, gateway: Gateway) -> None:
        self.a = a
        self.b = b
        self.gateway = gateway


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    directory: Path = tmp_path_factory.mktemp("balancing")
    a = start_simulator(directory, name="sim-a")
    try:
        b = start_simulator(directory, SIM_B_CONFIG, name="sim-b")
        try:
            config = gateway_config(directory, {
                "acct-a": subaccount(a, {"gpt-4.1": "d-gpt41"}, resource_group="default"),
                "acct-b": subaccount(b, {"gpt-4.1": "d-gpt41-b"}, resource_group="rg-b"),
            })
            gateway = start_gateway(directory, config)
            try:
                yield Pair(a, b, gateway)
            finally:
                gateway.daemon.stop()
        finally:
            b.daemon.stop()
    finally:
        a.daemon.stop()


def _chat(gateway: Gateway, text: str, **extra: Any) -> Any:
    reply = gateway.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": [{"role": "user", "content": text}],
                                                  **extra})
    assert reply.status == 200, reply
    return reply


def test_int_balancing_alternates_with_one_token_per_subaccount(pair: Pair) -> None:
    for i in range(10):
        _chat(pair.gateway, f"request {i}", stream=(i % 3 == 0))
    seen_a = pair.a.inference_requests()
    seen_b = pair.b.inference_requests()
    assert len(seen_a) == 5 and len(seen_b) == 5
    assert {r["path"].split("/")[4] for r in seen_a} == {"d-gpt41"}
    assert {r["path"].split("/")[4] for r in seen_b} == {"d-gpt41-b"}

    # Strict alternation, in the order the requests were made.
    merged = sorted([(r["time"], "a", r) for r in seen_a] + [(r["time"], "b", r) for r in seen_b],
                    key=lambda t: t[0])
    order = [who for _, who, _ in merged]
    assert all(order[i] != order[i + 1] for i in range(len(order) - 1)), order
    texts = [r["body"]["messages"][0]["content"] for _, _, r in merged]
    assert texts == [f"request {i}" for i in range(10)]

    # One token per subaccount, fetched once, reused for every call.
    assert pair.a.stats()["token_requests"] == 1
    assert pair.b.stats()["token_requests"] == 1
    tokens_a = {r["headers"]["authorization"] for r in seen_a}
    tokens_b = {r["headers"]["authorization"] for r in seen_b}
    assert len(tokens_a) == 1 and len(tokens_b) == 1 and tokens_a != tokens_b

    for who, requests, group in (("a", seen_a, "default"), ("b", seen_b, "rg-b")):
        for r in requests:
            headers = r["headers"]
            assert headers["authorization"].startswith("Bearer ") and len(headers["authorization"]) > 20, who
            assert headers["ai-resource-group"] == group, who
            assert headers["content-type"] == "application/json", who
            assert r["query"].get("api-version"), "Azure deployments need an api-version"

    health = pair.gateway.health()["subaccounts"]
    assert health["acct-a"]["fetches"] == 1 and health["acct-b"]["fetches"] == 1


def test_int_balancing_token_request_shape(pair: Pair) -> None:
    token_requests = [r for r in pair.a.requests() + pair.b.requests() if r["path"] == "/oauth/token"]
    assert len(token_requests) == 2
    for r in token_requests:
        assert r["method"] == "POST"
        assert r["headers"]["authorization"].startswith("Basic ")
        assert r["query"].get("grant_type") == "client_credentials"


def test_int_balancing_fails_over_to_the_other_subaccount(pair: Pair) -> None:
    before_a = pair.a.inference_requests()
    before_b = pair.b.inference_requests()
    # Round robin: the subaccount that did not serve the last request is picked first; make it answer 503 once.
    last_was_a = max(r["time"] for r in before_a) > max(r["time"] for r in before_b)
    first, second = (pair.b, pair.a) if last_was_a else (pair.a, pair.b)
    first.arm("d-gpt41-b" if first is pair.b else "d-gpt41", "503", 1)
    try:
        reply = _chat(pair.gateway, "failover please")
    finally:
        first.clear_faults()
    assert reply.json()["choices"][0]["message"]["content"].startswith("Echo: failover please")
    new_first = first.inference_requests()[len(before_b if first is pair.b else before_a):]
    new_second = second.inference_requests()[len(before_a if first is pair.b else before_b):]
    assert len(new_first) == 1, "the failed attempt"
    assert len(new_second) == 1, "the failover that served"
    assert new_first[0]["time"] < new_second[0]["time"]
    rows = pair.gateway.wait_usage_rows(1, "failovers = 1")
    assert len(rows) == 1
    assert rows[0]["attempts"] == 2 and rows[0]["status"] == 200
    assert rows[0]["subaccount"] == ("acct-a" if second is pair.a else "acct-b")
