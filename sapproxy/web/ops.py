"""
For operators: C{/health} and C{/metrics}.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy import __version__
from sapproxy.translate.client.openai_chat import CLIENT_API as DEFAULT_CLIENT_API
from sapproxy.dispatch.upstream_faults import credentials_failing, overall_status
from sapproxy.web.exposure import is_operator, operator_tokens
from sapproxy.web.frame import Route, ServicesRef, json_body


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, DEFAULT_CLIENT_API)

    @app.route("/health", methods=["GET"])
    def health(request: Any) -> bytes:
        accounts = {name: provider.health() for name, provider in route.services.gateway.providers.items()}
        status, code = overall_status([credentials_failing(state) for state in accounts.values()])
        if not is_operator(request, route.config):
            # Status only: the details name subaccounts, deployments and what clients sent.
            return json_body(request, code, {"status": status})
        resolved = {}
        for name in sorted(route.config.aliases):
            hit = route.services.catalog.resolve(name)
            resolved[name] = hit.name if hit else None
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
        if not is_operator(request, route.config):
            return json_body(request, 401, {"error": {
                "message": "metrics need the operator's bearer token (ops_token or metrics_token)"
                if operator_tokens(route.config) else "metrics are served to the local machine only; set "
                "ops_token or metrics_token to read them from elsewhere",
                "type": "authentication_error", "code": None}})
        body, content_type = route.services.metrics.render()
        request.setHeader(b"content-type", content_type.encode())
        return body
