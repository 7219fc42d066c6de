"""
For operators: C{/health} and C{/metrics}.
"""

from __future__ import annotations

import hmac
from typing import Any

from klein import Klein

from sapproxy import __version__
from sapproxy.auth import presented_token
from sapproxy.upstreams.sap_health import overall_status
from sapproxy.web.frame import Route, ServicesRef, json_body


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, "openai")

    @app.route("/health", methods=["GET"])
    def health(request: Any) -> bytes:
        accounts = {}
        for name, account in route.config.subaccounts.items():
            directory = route.services.gateway.directory
            accounts[name] = {
                "resource_group": account.resource_group,
                "models": sorted(directory.models_of(name)),
                **route.services.gateway.tokens[name].state(),
                **directory.state(name),
            }
        resolved = {}
        for name in sorted(route.config.aliases):
            hit = route.services.catalog.resolve(name)
            resolved[name] = hit.name if hit else None
        status, code = overall_status([route.services.gateway.tokens[name].guard.failing
                                       for name in route.config.subaccounts])
        body = {
            "status": status,
            "version": __version__,
            "subaccounts": accounts,
            "models": {name: route.services.catalog.family(name) for name in route.services.catalog.names},
            "aliases": resolved,
            "resolved_names": route.services.catalog.recent(),
            "other_generation": route.services.catalog.other_generation(),
            "circuit_breakers": {url.rsplit("/", 1)[-1]: round(left, 1) for url, left in route.services.gateway.picker.breakers()},
            "active_streams": route.services.gateway.active_streams,
        }
        return json_body(request, code, body)

    @app.route("/metrics", methods=["GET"])
    def metrics(request: Any) -> bytes:
        if route.services.metrics is None:
            return json_body(request, 404, {"error": {"message": "metrics are off", "type": "not_found_error"}})
        if route.config.metrics_token:
            given = presented_token(request.getHeader(b"authorization"), None) or ""
            if not hmac.compare_digest(given.encode(), route.config.metrics_token.encode()):
                return json_body(request, 401, {"error": {"message": "metrics need their own bearer token",
                                                          "type": "authentication_error", "code": None}})
        body, content_type = route.services.metrics.render()
        request.setHeader(b"content-type", content_type.encode())
        return body
