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

from attrs import frozen
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


class SubaccountDeployments:
    """
    What one subaccount serves, after C{model_filters}: its configured deployments and (when it discovers)
    those its AI API listed in its last good answer.

    @ivar generation: bumped whenever C{models} changes, so the picker knows to look again.
    @ivar on_change: called after C{models} changed (the service points it at the model catalog).
    """

    def __init__(self, account: SubAccount, config: GatewayConfig, clock: IReactorTime, *,
                 fetch_json: Callable[[SubAccount, str], Deferred[Any]] | None = None, metrics: Any = None,
                 previous: SubaccountDeployments | None = None) -> None:
        """
        @param fetch_json: GET an AI API path for the subaccount (with its token and resource group), the
            parsed JSON; C{None} disables discovery (configured deployments only).
        @param previous: what a config reload replaces: with the same key and resource group, what it found
            is kept (no empty window while the new one looks again).
        """
        self.account = account
        self.config = config
        self.clock = clock
        self.fetch_json = fetch_json
        self.metrics = metrics
        self.on_change: Callable[[], None] | None = None
        self.generation = 0
        self.started = False
        self.found: list[FoundDeployment] | None = None
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self.refreshing: Deferred[Any] | None = None
        self.last_asked = float("-inf")
        self.timer: IDelayedCall | None = None
        if previous is not None and previous.account.service_key == account.service_key \
                and previous.account.resource_group == account.resource_group:
            self.found, self.last_refresh, self.last_error = previous.found, previous.last_refresh, previous.last_error
        self.models: dict[str, tuple[str, ...]] = self._merge()

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def discovering(self) -> bool:
        return self.fetch_json is not None and self.account.discover

    def _merge(self) -> dict[str, tuple[str, ...]]:
        merged = {m: tuple(urls) for m, urls in self.account.deployment_models.items()}
        if self.found is not None and self.account.discover:
            for model, urls in serving(self.found, self.config.discovery.scenario).items():
                merged[model] = tuple(dict.fromkeys(merged.get(model, ()) + urls))
        return {m: urls for m, urls in merged.items() if self.config.model_filters.allows(m)}

    # refreshing

    def start(self) -> None:
        """
        Discover now, then every C{refresh_seconds} (jittered).
        """
        self.started = True
        if self.discovering:
            self.refresh()

    def stop(self) -> None:
        self.started = False
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def refresh_soon(self) -> None:
        """
        A deployment answered "not found": look again now, unless a look began less than
        C{discovery.min_interval} seconds ago.
        """
        if self.discovering and self.clock.seconds() - self.last_asked >= self.config.discovery.min_interval:
            self.refresh()

    def refresh(self) -> Deferred[Any]:
        """
        Read the deployments from the AI API now (one read in flight); never fails.
        """
        if self.refreshing is not None:
            return self.refreshing
        assert self.fetch_json is not None
        self.last_asked = self.clock.seconds()
        d = self.fetch_json(self.account, "/v2/lm/deployments?scenarioId=" + self.config.discovery.scenario)
        self.refreshing = d
        d.addCallback(parse_deployments)
        d.addCallbacks(self._found, self._failed)
        return d

    def _found(self, found: list[FoundDeployment]) -> None:
        self.refreshing = None
        self.found = found
        self.last_refresh = self.clock.seconds()
        self.last_error = None
        models = self._merge()
        if self.metrics is not None:
            self.metrics.discovery(self.name, "ok")
        if models != self.models:
            added = sorted(set(models) - set(self.models))
            gone = sorted(set(self.models) - set(models))
            log.info("subaccount {name} (resource group {group}): {n} models from discovery{added}{gone}",
                     name=self.name, group=self.account.resource_group, n=len(models),
                     added=f"; new: {', '.join(added)}" if added else "",
                     gone=f"; gone: {', '.join(gone)}" if gone else "")
            self.models = models
            self.generation += 1
            if self.on_change is not None:
                self.on_change()
        self._schedule(self.config.discovery.refresh_seconds)

    def _failed(self, failure: Any) -> None:
        self.refreshing = None
        if failure.check(CancelledError) and not self.started:
            return
        error = failure.value
        self.last_error = str(error) or type(error).__name__
        if self.metrics is not None:
            self.metrics.discovery(self.name, "error")
        kept = "keeping the last good list" if self.found is not None else "serving configured deployments only"
        log.warn("deployment discovery for subaccount {name} (resource group {group}) failed: {error}; {kept}, "
                 "retrying in {retry:g} s", name=self.name, group=self.account.resource_group,
                 error=self.last_error, kept=kept, retry=self.config.discovery.retry_seconds)
        self._schedule(self.config.discovery.retry_seconds)

    def _schedule(self, delay: float) -> None:
        if not self.started:
            return
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        spread = self.config.discovery.jitter
        delay = delay * random.uniform(1 - spread, 1 + spread) if spread else delay

        def again() -> None:
            self.timer = None
            self.refresh()

        self.timer = self.clock.callLater(max(delay, 0.0), again)

    # reporting

    def state(self) -> dict[str, Any]:
        """
        For C{/health}: each model with its deployments, their status and origin, and the last refresh and
        error of discovery.
        """
        configured = self.account.deployment_models
        found = {d.url: d for d in self.found or ()}
        models: dict[str, list[dict[str, Any]]] = {}
        for model, urls in sorted(self.models.items()):
            models[model] = [{
                "id": url.rsplit("/", 1)[-1],
                "status": found[url].status if url in found else "configured",
                "origin": "configured" if url in configured.get(model, ()) else "discovered",
            } for url in urls]
        not_serving = [{"id": d.id, "model": d.model, "status": d.status} for d in self.found or ()
                       if d.status != "RUNNING" and d.scenario == self.config.discovery.scenario]
        now = self.clock.seconds()
        return {
            "discovery": "on" if self.discovering else "off",
            "deployments": models,
            "not_running": not_serving,
            "last_refresh_ago": round(now - self.last_refresh, 1) if self.last_refresh is not None else None,
            "last_discovery_error": self.last_error,
        }


def ai_api_fetcher(http: Any, tokens: Any, clock: IReactorTime, *,
                   timeout: float = 30.0) -> Callable[[SubAccount, str], Deferred[Any]]:
    """
    C{fetch_json} for L{SubaccountDeployments}: a GET on the subaccount's AI API with its token (from
    C{tokens}, its L{sapproxy.upstreams.sap_aicore.TokenCache}) and resource group.
    """

    async def fetch(account: SubAccount, path: str) -> Any:
        base = account.service_key.ai_api_url
        if not base:
            raise DiscoveryError("the service key has no serviceurls.AI_API_URL")
        token = await tokens.get()
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
            tokens.invalidate(token)
        if response.code != 200:
            raise DiscoveryError(f"AI API answered HTTP {response.code} to GET {path.split('?', 1)[0]}")
        try:
            return json.loads(body)
        except ValueError:
            raise DiscoveryError("AI API answered with a body that is not JSON") from None

    return lambda account, path: Deferred.fromCoroutine(fetch(account, path))


def follow_models(providers: Iterable[Any], changed: Callable[[], None]) -> None:
    """
    Call C{changed} whenever a provider that discovers its deployments finds or loses a model (the service
    points it at the model catalog).
    """
    for provider in providers:
        discovery = getattr(provider, "discovery", None)
        if isinstance(discovery, SubaccountDeployments):
            discovery.on_change = changed
