"""
Which deployment serves the next request: round robin, failover order, and a circuit breaker.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

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
    Round robin across the providers that serve a model, then across that provider's deployments.

    L{candidates} gives the whole failover order for one request: the round-robin choice first, then
    every other deployment of the model, those in a breaker's cooldown last (a deployment that is down is
    still better than none).
    """

    def __init__(self, providers: Sequence[Any], clock: IReactorTime, *,
                 cooldown: float = 30.0, failures: int = 3) -> None:
        """
        @param providers: L{sapproxy.interfaces.IProvider}s, in the order failover tries them.
        """
        self._clock = clock
        self._cooldown = cooldown
        self._threshold = failures
        self._accounts: dict[str, list[Any]] = {}
        for provider in providers:
            for model in provider.models():
                self._accounts.setdefault(model, []).append(provider)
        self._next_account: dict[str, int] = {}
        self._next_url: dict[tuple[str, str], int] = {}
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def candidates(self, model: str) -> list[Deployment]:
        accounts = self._accounts.get(model)
        if not accounts:
            return []
        start = self._next_account.get(model, 0)
        self._next_account[model] = (start + 1) % len(accounts)
        ordered: list[Deployment] = []
        for i in range(len(accounts)):
            provider = accounts[(start + i) % len(accounts)]
            deployments = provider.deployments(model)
            if not deployments:
                continue
            key = (model, provider.name)
            first = self._next_url.get(key, 0) % len(deployments)
            if i == 0:
                self._next_url[key] = first + 1
            ordered.extend(deployments[(first + j) % len(deployments)] for j in range(len(deployments)))
        now = self._clock.seconds()
        healthy = [d for d in ordered if self._open_until.get(d.url, 0.0) <= now]
        return healthy + [d for d in ordered if d not in healthy]

    def succeeded(self, deployment: Deployment) -> None:
        self._failures.pop(deployment.url, None)
        self._open_until.pop(deployment.url, None)

    def failed(self, deployment: Deployment) -> None:
        count = self._failures.get(deployment.url, 0) + 1
        self._failures[deployment.url] = count
        if count >= self._threshold:
            self._open_until[deployment.url] = self._clock.seconds() + self._cooldown

    def breakers(self) -> Iterator[tuple[str, float]]:
        """
        The deployments in cooldown now, with the seconds left.
        """
        now = self._clock.seconds()
        for url, until in self._open_until.items():
            if until > now:
                yield url, until - now
