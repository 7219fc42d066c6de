"""
Which deployment serves the next request: round robin, failover order, and a circuit breaker.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from sapproxy.config import SubAccount


@frozen
class Deployment:
    subaccount: SubAccount
    url: str
    model: str

    @property
    def id(self) -> str:
        return self.url.rsplit("/", 1)[-1]


class DeploymentPicker:
    """
    Round robin across the subaccounts that serve a model, then across that subaccount's URLs.

    L{candidates} gives the whole failover order for one request: the round-robin choice first, then
    every other deployment of the model, those in a breaker's cooldown last (a deployment that is down is
    still better than none).
    """

    def __init__(self, subaccounts: Mapping[str, SubAccount], clock: IReactorTime, *,
                 cooldown: float = 30.0, failures: int = 3, directory: Any = None) -> None:
        """
        @param directory: what each subaccount serves now (L{sapproxy.upstreams.sap_discovery.DeploymentDirectory},
            with C{models_of(name)} and a C{generation} that changes with it); the config's
            C{deployment_models} when absent.
        """
        self._clock = clock
        self._cooldown = cooldown
        self._threshold = failures
        self._subaccounts = subaccounts
        self._directory = directory
        self._generation = -1
        self._accounts: dict[str, list[SubAccount]] = {}
        self._rebuild()
        self._next_account: dict[str, int] = {}
        self._next_url: dict[tuple[str, str], int] = {}
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def _models(self, account: SubAccount) -> Mapping[str, tuple[str, ...]]:
        if self._directory is None:
            return account.deployment_models
        return self._directory.models_of(account.name)  # type: ignore[no-any-return]

    def _rebuild(self) -> None:
        self._generation = self._directory.generation if self._directory is not None else 0
        self._accounts = {}
        for account in self._subaccounts.values():
            for model in self._models(account):
                self._accounts.setdefault(model, []).append(account)

    def candidates(self, model: str) -> list[Deployment]:
        if self._directory is not None and self._directory.generation != self._generation:
            self._rebuild()
        accounts = self._accounts.get(model)
        if not accounts:
            return []
        start = self._next_account.get(model, 0)
        self._next_account[model] = (start + 1) % len(accounts)
        ordered: list[Deployment] = []
        for i in range(len(accounts)):
            account = accounts[(start + i) % len(accounts)]
            urls = self._models(account)[model]
            key = (model, account.name)
            first = self._next_url.get(key, 0) % len(urls)
            if i == 0:
                self._next_url[key] = first + 1
            ordered.extend(Deployment(account, urls[(first + j) % len(urls)], model) for j in range(len(urls)))
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
