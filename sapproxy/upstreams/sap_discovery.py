"""
Which deployments each subaccount has: the configured ones, and those read from the tenant's AI API.

AI Core deployment ids change whenever a deployment is recreated, so pasting URLs by hand goes stale.  A
subaccount without C{deployment_models} reads its RUNNING deployments of scenario C{foundation-models} from
C{GET {AI_API_URL}/v2/lm/deployments} (header C{AI-Resource-Group}): the model name from
C{details.resources.backend_details.model.name} (or C{backendDetails}), the URL from C{deploymentUrl}.

Discovery refreshes in the background (jittered, so several gateways do not ask in step), at once when a
deployment answers 404, and keeps the last good list through an AI API outage; it never stops the gateway from
starting.  C{model_filters} apply to configured and discovered names alike.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Iterable, Mapping

from attrs import define, field, frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sapproxy.config import GatewayConfig, SubAccount

log = Logger()


class DiscoveryError(Exception):
    """
    The AI API could not be read; C{str()} says why, without secrets.
    """


@frozen
class FoundDeployment:
    """
    One deployment as the AI API lists it.
    """

    id: str
    url: str
    model: str
    status: str
    scenario: str


def model_name(resource: Mapping[str, Any]) -> str | None:
    """
    The model behind a deployment: C{details.resources.backend_details.model.name}, or C{backendDetails}'s.
    """
    resources = ((resource.get("details") or {}).get("resources") or {})
    if not isinstance(resources, dict):
        return None
    for key in ("backend_details", "backendDetails"):
        model = ((resources.get(key) or {}).get("model") or {}) if isinstance(resources.get(key), dict) else {}
        name = model.get("name") if isinstance(model, dict) else None
        if isinstance(name, str) and name:
            return name
    return None


def parse_deployments(body: Any) -> list[FoundDeployment]:
    """
    Every deployment of a C{GET /v2/lm/deployments} answer that names a model (any status, any scenario).

    @raise DiscoveryError: the answer is not the AI API's listing.
    """
    if not isinstance(body, dict) or not isinstance(body.get("resources"), list):
        raise DiscoveryError("the AI API answered without a list of deployments")
    found = []
    for resource in body["resources"]:
        if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
            continue
        name = model_name(resource)
        if name is None:
            continue
        found.append(FoundDeployment(
            id=resource["id"], url=str(resource.get("deploymentUrl") or "").rstrip("/"), model=name,
            status=str(resource.get("status") or ""), scenario=str(resource.get("scenarioId") or ""),
        ))
    return sorted(found, key=lambda d: d.id)


def serving(found: Iterable[FoundDeployment], scenario: str) -> dict[str, tuple[str, ...]]:
    """
    The RUNNING deployments of C{scenario} with a URL, by model name (URLs in id order, so every gateway
    process sees the same order).
    """
    models: dict[str, list[str]] = {}
    for d in found:
        if d.status == "RUNNING" and d.scenario == scenario and d.url:
            models.setdefault(d.model, []).append(d.url)
    return {m: tuple(urls) for m, urls in models.items()}


@define
class SubaccountDeployments:
    """
    What one subaccount serves: C{configured} from the config, C{found} from its last good discovery.
    """

    account: SubAccount
    found: list[FoundDeployment] | None = None
    last_refresh: float | None = None
    last_error: str | None = None
    refreshing: Deferred[None] | None = None
    last_asked: float = float("-inf")
    timer: IDelayedCall | None = None
    models: dict[str, tuple[str, ...]] = field(factory=dict)


class DeploymentDirectory:
    """
    The deployments of every subaccount, configured and discovered, after C{model_filters}.

    @ivar generation: bumped whenever what some subaccount serves changes, so the picker knows to look again.
    """

    def __init__(self, config: GatewayConfig, clock: IReactorTime, *,
                 fetch_json: Callable[[SubAccount, str], Deferred[Any]] | None = None,
                 metrics: Any = None, previous: DeploymentDirectory | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        """
        @param fetch_json: GET an AI API path for a subaccount (with its token and resource group), the
            parsed JSON; C{None} disables discovery (configured deployments only).
        @param previous: the directory a config reload replaces: subaccounts with the same key and resource
            group keep what was found (no empty window while the new one looks again).
        """
        self.config = config
        self.clock = clock
        self.fetch_json = fetch_json
        self.metrics = metrics
        self.on_change = on_change
        self.generation = 0
        self.started = False
        self.accounts: dict[str, SubaccountDeployments] = {}
        for name, account in config.subaccounts.items():
            state = SubaccountDeployments(account)
            old = previous.accounts.get(name) if previous is not None else None
            if old is not None and old.account.service_key == account.service_key \
                    and old.account.resource_group == account.resource_group:
                state.found, state.last_refresh, state.last_error = old.found, old.last_refresh, old.last_error
            self.accounts[name] = state
            state.models = self._merge(state)

    # what is served

    def models_of(self, name: str) -> Mapping[str, tuple[str, ...]]:
        return self.accounts[name].models

    def names(self) -> list[str]:
        return sorted({m for state in self.accounts.values() for m in state.models})

    def discovering(self, name: str) -> bool:
        return self.fetch_json is not None and self.accounts[name].account.discover

    def _merge(self, state: SubaccountDeployments) -> dict[str, tuple[str, ...]]:
        merged = {m: tuple(urls) for m, urls in state.account.deployment_models.items()}
        if state.found is not None and state.account.discover:
            for model, urls in serving(state.found, self.config.discovery.scenario).items():
                merged[model] = tuple(dict.fromkeys(merged.get(model, ()) + urls))
        return {m: urls for m, urls in merged.items() if self.config.model_filters.allows(m)}

    # refreshing

    def start(self) -> None:
        """
        Discover every discovering subaccount now, then every C{refresh_seconds} (jittered).
        """
        self.started = True
        for name in self.accounts:
            if self.discovering(name):
                self.refresh(name)

    def stop(self) -> None:
        self.started = False
        for state in self.accounts.values():
            if state.timer is not None and state.timer.active():
                state.timer.cancel()
            state.timer = None

    def refresh_soon(self, name: str) -> None:
        """
        A deployment of C{name} answered 404: look again now, unless a look began less than
        C{discovery.min_interval} seconds ago.
        """
        if name not in self.accounts or not self.discovering(name):
            return
        state = self.accounts[name]
        if self.clock.seconds() - state.last_asked < self.config.discovery.min_interval:
            return
        self.refresh(name)

    def refresh(self, name: str) -> Deferred[None]:
        """
        Read C{name}'s deployments from the AI API now (one read in flight per subaccount); never fails.
        """
        state = self.accounts[name]
        if state.refreshing is not None:
            return state.refreshing
        assert self.fetch_json is not None
        state.last_asked = self.clock.seconds()
        d = self.fetch_json(state.account, "/v2/lm/deployments?scenarioId=" + self.config.discovery.scenario)
        state.refreshing = d
        d.addCallback(parse_deployments)
        d.addCallbacks(lambda found: self._found(state, found), lambda f: self._failed(state, f))
        return d

    def _found(self, state: SubaccountDeployments, found: list[FoundDeployment]) -> None:
        state.refreshing = None
        state.found = found
        state.last_refresh = self.clock.seconds()
        state.last_error = None
        models = self._merge(state)
        if self.metrics is not None:
            self.metrics.discovery(state.account.name, "ok")
        if models != state.models:
            added = sorted(set(models) - set(state.models))
            gone = sorted(set(state.models) - set(models))
            log.info("subaccount {name} (resource group {group}): {n} models from discovery{added}{gone}",
                     name=state.account.name, group=state.account.resource_group, n=len(models),
                     added=f"; new: {', '.join(added)}" if added else "",
                     gone=f"; gone: {', '.join(gone)}" if gone else "")
            state.models = models
            self.generation += 1
            if self.on_change is not None:
                self.on_change()
        self._schedule(state, self.config.discovery.refresh_seconds)

    def _failed(self, state: SubaccountDeployments, failure: Any) -> None:
        state.refreshing = None
        if failure.check(CancelledError) and not self.started:
            return
        error = failure.value
        state.last_error = str(error) if isinstance(error, (DiscoveryError,)) or str(error) else type(error).__name__
        if self.metrics is not None:
            self.metrics.discovery(state.account.name, "error")
        kept = "keeping the last good list" if state.found is not None else "serving configured deployments only"
        log.warn("deployment discovery for subaccount {name} (resource group {group}) failed: {error}; {kept}, "
                 "retrying in {retry:g} s", name=state.account.name, group=state.account.resource_group,
                 error=state.last_error, kept=kept, retry=self.config.discovery.retry_seconds)
        self._schedule(state, self.config.discovery.retry_seconds)

    def _schedule(self, state: SubaccountDeployments, delay: float) -> None:
        if not self.started:
            return
        if state.timer is not None and state.timer.active():
            state.timer.cancel()
        spread = self.config.discovery.jitter
        delay = delay * random.uniform(1 - spread, 1 + spread) if spread else delay

        def again() -> None:
            state.timer = None
            self.refresh(state.account.name)

        state.timer = self.clock.callLater(max(delay, 0.0), again)

    # reporting

    def state(self, name: str) -> dict[str, Any]:
        """
        For C{/health} and C{sapproxy-admin deployments}: each model with its deployments, their status and
        origin, and the last refresh and error.
        """
        state = self.accounts[name]
        configured = state.account.deployment_models
        found = {d.url: d for d in state.found or ()}
        models: dict[str, list[dict[str, Any]]] = {}
        for model, urls in sorted(state.models.items()):
            models[model] = [{
                "id": url.rsplit("/", 1)[-1],
                "status": found[url].status if url in found else "configured",
                "origin": "configured" if url in configured.get(model, ()) else "discovered",
            } for url in urls]
        not_serving = [{"id": d.id, "model": d.model, "status": d.status} for d in state.found or ()
                       if d.status != "RUNNING" and d.scenario == self.config.discovery.scenario]
        now = self.clock.seconds()
        return {
            "discovery": "on" if self.discovering(name) else "off",
            "deployments": models,
            "not_running": not_serving,
            "last_refresh_ago": round(now - state.last_refresh, 1) if state.last_refresh is not None else None,
            "last_discovery_error": state.last_error,
        }


def ai_api_fetcher(http: Any, tokens: Mapping[str, Any], clock: IReactorTime, *, timeout: float = 30.0,
                   headers_for: Callable[..., dict[str, str]] | None = None) -> Callable[[SubAccount, str], Deferred[Any]]:
    """
    C{fetch_json} for L{DeploymentDirectory}: a GET on the subaccount's AI API with its token and resource group.
    """

    async def fetch(account: SubAccount, path: str) -> Any:
        base = account.service_key.ai_api_url
        if not base:
            raise DiscoveryError("the service key has no serviceurls.AI_API_URL")
        token = await tokens[account.name].get()
        headers = {"Authorization": f"Bearer {token}", "AI-Resource-Group": account.resource_group,
                   "Accept": "application/json"}
        try:
            d = http.request("GET", base + path, headers=headers, allow_redirects=False, unbuffered=True)
            d.addTimeout(timeout, clock)
            response = await d
            body = await response.content()
        except CancelledError:
            raise
        except Exception as e:
            raise DiscoveryError(f"AI API unreachable: {type(e).__name__}") from None
        if response.code == 401:
            tokens[account.name].invalidate(token)
        if response.code != 200:
            raise DiscoveryError(f"AI API answered HTTP {response.code} to GET {path.split('?', 1)[0]}")
        try:
            return json.loads(body)
        except ValueError:
            raise DiscoveryError("AI API answered with a body that is not JSON") from None

    return lambda account, path: Deferred.fromCoroutine(fetch(account, path))
