"""
For operators: C{/health} and C{/metrics}.
"""

from __future__ import annotations

import hmac
from typing import Any

from klein import Klein

from sapproxy import __version__
from sapproxy.resources._scaffold import Services, json_body


def install(app: Klein, services: Services) -> None:
    gateway = services.gateway
    config = gateway.config

    @app.route("/health", methods=["GET"])
    def health(request: Any) -> bytes:
        accounts = {}
        for name, account in config.subaccounts.items():
            accounts[name] = {
                "resource_group": account.resource_group,
                "models": sorted(account.deployment_models),
                **gateway.tokens[name].state(),
            }
        resolved = {}
        for name in sorted(config.aliases):
            hit = services.catalog.resolve(name)
            resolved[name] = hit.name if hit else None
        body = {
            "status": "ok",
            "version": __version__,
            "subaccounts": accounts,
            "models": {name: services.catalog.family(name) for name in services.catalog.names},
            "aliases": resolved,
            "resolved_names": services.catalog.recent(),
            "circuit_breakers": {url.rsplit("/", 1)[-1]: round(left, 1) for url, left in gateway.picker.breakers()},
            "active_streams": gateway.active_streams,
        }
        return json_body(request, 200, body)

    @app.route("/metrics", methods=["GET"])
    def metrics(request: Any) -> bytes:
        if services.metrics is None:
            return json_body(request, 404, {"error": {"message": "metrics are off", "type": "not_found_error"}})
        if config.metrics_token:
            header = (request.getHeader(b"authorization") or b"").decode("latin-1")
            if not hmac.compare_digest(header.encode(), f"Bearer {config.metrics_token}".encode()):
                return json_body(request, 401, {"error": {"message": "metrics need their own bearer token",
                                                          "type": "authentication_error", "code": None}})
        body, content_type = services.metrics.render()
        request.setHeader(b"content-type", content_type.encode())
        return body
