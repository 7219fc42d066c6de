"""
For operators: C{/health} and C{/metrics}.
"""

from __future__ import annotations

import hmac
from typing import Any

from klein import Klein

from sapproxy import __version__
from sapproxy.auth import presented_token
from sapproxy.translate.client.openai_chat import CLIENT_API as DEFAULT_CLIENT_API
from sapproxy.dispatch.upstream_faults import credentials_failing, overall_status
from sapproxy.web.frame import Route, ServicesRef, json_body


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, DEFAULT_CLIENT_API)

    @app.route("/health", methods=["GET"])
    def health(request: Any) -> bytes:
        accounts = {name: provider.health() for name, provider in route.services.gateway.providers.items()}
        resolved = {}
        for name in sorted(route.config.aliases):
            hit = route.services.catalog.resolve(name)
            resolved[name] = hit.name if hit else None
        status, code = overall_status([credentials_failing(state) for state in accounts.values()])
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
