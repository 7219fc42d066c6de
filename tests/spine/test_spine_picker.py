"""
DeploymentPicker: round robin across subaccounts then URLs, failover order, circuit breaker.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from sapproxy.dispatch.picker import Deployment, DeploymentPicker


class Provider:
    """Just what the picker asks a provider: its name, models and deployments."""

    generation = 0
    balanced = True

    def __init__(self, name: str, urls: dict[str, tuple[str, ...]]) -> None:
        self.name = name
        self._deployments = {model: [Deployment(name, url, model) for url in u] for model, u in urls.items()}

    def models(self) -> list[str]:
        return list(self._deployments)

    def deployments(self, model: str) -> list[Deployment]:
        return self._deployments.get(model, [])


def accounts() -> list[Provider]:
    return [
        Provider("a", {"gpt": ("https://h/d/a1", "https://h/d/a2")}),
        Provider("b", {"gpt": ("https://h/d/b1",), "other": ("https://h/d/o",)}),
    ]


def test_round_robin_across_subaccounts_then_urls() -> None:
    picker = DeploymentPicker(accounts(), Clock())
    firsts = [picker.candidates("gpt")[0].id for _ in range(6)]
    assert firsts == ["a1", "b1", "a2", "b1", "a1", "b1"]


def test_candidates_list_every_deployment_for_failover() -> None:
    picker = DeploymentPicker(accounts(), Clock())
    assert [d.id for d in picker.candidates("gpt")] == ["a1", "a2", "b1"]
    assert picker.candidates("nothing") == []


def test_breaker_moves_a_failing_deployment_last_then_back() -> None:
    clock = Clock()
    picker = DeploymentPicker(accounts(), clock, cooldown=30, failures=2)
    (a1,) = [d for d in picker.candidates("gpt") if d.id == "a1"]
    picker.failed(a1)
    picker.failed(a1)
    assert [d.id for d in picker.candidates("gpt")][-1] == "a1"
    assert [url.rsplit("/", 1)[-1] for url, _ in picker.breakers()] == ["a1"]
    clock.advance(31)
    assert list(picker.breakers()) == []
    picker.succeeded(a1)
    assert "a1" in [d.id for d in picker.candidates("gpt")][:2]
