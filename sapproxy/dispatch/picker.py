"""
Which deployment serves the next request: round robin, failover order, and a circuit breaker.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from attrs import frozen
from twisted.internet.interfaces import IReactorTime


@frozen
class Deployment:
    """
    One place a model is served: a URL at a provider (an SAP AI Core subaccount, ...), named by its own.
    """

    provider: str
    url: str
    model: str

    @property
    def id(self) -> str:
        return self.url.rsplit("/", 1)[-1]


class DeploymentPicker:
    """
    Round robin across the SAP AI Core subaccounts that serve a model, then across that subaccount's
    deployments; the other providers (vendors) follow in config order, as fallbacks; a model's C{routing}
    entry instead fixes the order outright.

    L{candidates} gives the whole failover order for one request: the round-robin choice first, then
    every other deployment of the model, those in a breaker's cooldown last (a deployment that is down is
    still better than none).
    """

    def __init__(self, providers: Sequence[Any], clock: IReactorTime, *,
                 cooldown: float = 30.0, failures: int = 3, routing: Mapping[str, Sequence[str]] | None = None) -> None:
        """
        @param providers: L{sapproxy.interfaces.IProvider}s, in the order failover tries them.
        @param routing: model -> provider names, the failover order for that model (no round robin).
        """
        self._clock = clock
        self._cooldown = cooldown
        self._threshold = failures
        self._providers = list(providers)
        self._routing = routing or {}
        self._accounts: dict[str, list[Any]] = {}
        #: model -> how many of its providers (the first ones) take turns.
        self._rotating: dict[str, int] = {}
        self._generations: list[int] = []
        self._rebuild()
        self._next_account: dict[str, int] = {}
        self._next_url: dict[tuple[str, str], int] = {}
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def _generation(self) -> list[int]:
        # A provider whose models change at run time (SAP AI Core discovery) has a generation that changes with them.
        return [p.generation for p in self._providers]

    def _rebuild(self) -> None:
        self._generations = self._generation()
        self._accounts = {}
        for provider in self._providers:
            for model in provider.models():
                self._accounts.setdefault(model, []).append(provider)
        by_name = {provider.name: provider for provider in self._providers}
        self._rotating = {}
        for model, serving in self._accounts.items():
            routed = [by_name[n] for n in self._routing.get(model, ()) if n in by_name and by_name[n] in serving]
            if routed:
                self._accounts[model] = routed
                self._rotating[model] = 1
            else:
                balanced = [p for p in serving if p.balanced]
                self._accounts[model] = balanced + [p for p in serving if p not in balanced]
                self._rotating[model] = max(len(balanced), 1)

    def candidates(self, model: str) -> list[Deployment]:
        if self._generation() != self._generations:
            self._rebuild()
        accounts = self._accounts.get(model)
        if not accounts:
            return []
        rotating = self._rotating[model]
        start = self._next_account.get(model, 0) % rotating
        self._next_account[model] = (start + 1) % rotating
        turn = [accounts[(start + i) % rotating] for i in range(rotating)] + accounts[rotating:]
        ordered: list[Deployment] = []
        for i, provider in enumerate(turn):
            deployments = provider.deployments(model)
            if not deployments:
                continue
            key = (model, provider.name)
            first = self._next_url.get(key, 0) % len(deployments)
            if i == 0:
                self._next_url[key] = first + 1
            ordered.extend(deployments[(first + j) % len(deployments)] for j in range(len(deployments)))
        open_until = self._open_until
        if not open_until:
            return ordered  # no breaker open (the usual case): all healthy, in turn order
        now = self._clock.seconds()
        healthy = [d for d in ordered if open_until.get(d.url, 0.0) <= now]
        return healthy + [d for d in ordered if d not in healthy]

    def tiers(self, model: str, deployments: list[Deployment]) -> tuple[list[Deployment], list[Deployment]]:
        """
        C{deployments} (of L{candidates}) split into the first tier, the providers that take turns (SAP AI
        Core's subaccounts, or a routed model's first provider), and the fallbacks after them.
        """
        accounts = self._accounts.get(model) or []
        first = {p.name for p in accounts[:self._rotating.get(model, len(accounts))]}
        return [d for d in deployments if d.provider in first], [d for d in deployments if d.provider not in first]

    def healthy_first(self, deployments: list[Deployment]) -> list[Deployment]:
        return [d for d in deployments if self.healthy(d)] + [d for d in deployments if not self.healthy(d)]

    def succeeded(self, deployment: Deployment) -> None:
        self._failures.pop(deployment.url, None)
        self._open_until.pop(deployment.url, None)

    def failed(self, deployment: Deployment) -> None:
        count = self._failures.get(deployment.url, 0) + 1
        self._failures[deployment.url] = count
        if count >= self._threshold:
            self._open_until[deployment.url] = self._clock.seconds() + self._cooldown

    def trip(self, deployment: Deployment) -> None:
        """
        Open C{deployment}'s breaker now (it is known to be gone, not merely failing).
        """
        self._failures[deployment.url] = self._threshold
        self._open_until[deployment.url] = self._clock.seconds() + self._cooldown

    def healthy(self, deployment: Deployment) -> bool:
        return self._open_until.get(deployment.url, 0.0) <= self._clock.seconds()

    def breakers(self) -> Iterator[tuple[str, float]]:
        """
        The deployments in cooldown now, with the seconds left.
        """
        now = self._clock.seconds()
        for url, until in self._open_until.items():
            if until > now:
                yield url, until - now
