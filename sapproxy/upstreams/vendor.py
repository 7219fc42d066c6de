"""
What the vendors' providers share: the models of their config entry, one deployment per model, static
request headers, and what a refused credential means.

A vendor's API key does not expire the way an SAP AI Core token does, so a 401 (or 403) from the vendor means
the configured key is wrong or revoked: the attempt fails over like a 5xx (the client, whose own key was
fine, sees a 502 if no other upstream can answer), and the provider is reported failing in C{/health}
until a request succeeds again.  Secrets stay inside the headers: never in C{health()}, logs or errors.
"""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import quote

from twisted.internet.defer import Deferred, succeed
from twisted.web.http_headers import Headers
from zope.interface import implementer

from sapproxy.config import is_reasoning_model
from sapproxy.config.providers import ProviderModel, models_of
from sapproxy.dispatch.picker import Deployment
from sapproxy.interfaces import IProvider
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams.http import url_bytes

@implementer(IProvider)
class VendorProvider:
    """
    The common part of a vendor provider; a kind fills in L{deployment_url}, L{operation_url},
    L{wire_format} and L{static_headers}.
    """

    kind = "vendor"
    credential_span = "provider.credentials"
    #: The statuses with which the vendor refuses the configured credentials (a 502 for the client).
    refuses_credentials_with = (401, 403)
    #: Vendors are fallbacks, tried in config order after the balanced SAP AI Core subaccounts.
    balanced = False
    #: The models and deployments come from the config and never change at run time.
    generation = 0

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.name: str = settings.name
        self.kind = settings.kind
        self._models: dict[str, ProviderModel] = dict(models_of(settings))
        self._deployments = {model: [Deployment(self.name, self.deployment_url(model, m.upstream_model), model)]
                             for model, m in self._models.items()}
        self._urls: dict[tuple[str, str, bool], bytes] = {}
        self._headers = self.static_headers()
        #: Why the vendor last refused the configured credentials; None once a request succeeds.
        self.rejected: str | None = None

    # What each kind says.

    def deployment_url(self, model: str, upstream: str) -> str:
        raise NotImplementedError

    def operation_url(self, deployment: Deployment, request: WireRequest, target: WireTarget) -> str:
        raise NotImplementedError

    def static_headers(self) -> dict[bytes, list[bytes]]:
        return {b"content-type": [b"application/json"]}

    def wire_format(self, model: str) -> str:
        raise NotImplementedError

    # IProvider

    def models(self) -> list[str]:
        return list(self._models)

    def deployments(self, model: str) -> list[Deployment]:
        return self._deployments.get(model, [])

    def target(self, model: str) -> WireTarget:
        upstream = self._models[model].upstream_model
        return WireTarget(upstream, reasoning=is_reasoning_model(upstream) or is_reasoning_model(model))

    def url(self, deployment: Deployment, request: WireRequest) -> bytes:
        key = (deployment.url, request.operation, request.stream)
        url = self._urls.get(key)
        if url is None:
            # Bounded by the config: deployments times operations.
            url = self._urls[key] = url_bytes(self.operation_url(deployment, request, self.target(deployment.model)))
        return url

    def start(self) -> None:
        """
        Nothing to do in the background for a static key.
        """

    def deployment_gone(self, deployment: Deployment, message: str) -> bool:
        """
        A vendor's 404 names a model or path the config got wrong, not a deployment that went away.
        """
        return False

    def credentials_ready(self) -> bool:
        return True

    def authorize(self, deployment: Deployment, url: bytes, body: bytes,
                  traceparent: str | None) -> Deferred[Headers]:
        raw = dict(self._headers)
        if traceparent:
            raw[b"traceparent"] = [traceparent.encode("latin-1")]
        return succeed(Headers(raw))

    def credentials_rejected(self, deployment: Deployment, headers: Headers) -> bool:
        """
        A static key gets no better by retrying: note it for C{/health} and let the attempt fail over.
        """
        self.rejected = f"{self.kind} refused the configured credentials"
        return False

    def also_speaks(self, model: str) -> tuple[str, ...]:
        return ()

    def answered(self) -> None:
        """
        The vendor answered a request: its credentials work (again).
        """
        self.rejected = None

    def health(self) -> dict[str, Any]:
        state = {"kind": self.kind, "models": sorted(self._models),
                 "credentials": "failing" if self.rejected else "ok", "last_error": self.rejected}
        state.update(self.health_extra())
        return state

    def health_extra(self) -> dict[str, Any]:
        return {}

    def stop(self) -> None:
        pass


def model_fragment(base: str, model: str) -> str:
    """
    A deployment URL for a model whose id travels in the body: the API's base URL, told apart per model by a
    fragment (never sent) so breakers and logs treat each model on its own.
    """
    return f"{base.rstrip('/')}#{quote(model, safe='')}"


def base_of(deployment_url: str) -> str:
    return deployment_url.split("#", 1)[0]


def header_lines(headers: Iterable[tuple[str, str]]) -> dict[bytes, list[bytes]]:
    return {name.lower().encode("latin-1"): [value.encode("latin-1")] for name, value in headers}
