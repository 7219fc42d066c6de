"""
The Klein application: every surface's routes over one set of services.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from werkzeug.exceptions import MethodNotAllowed, NotFound

from sapproxy.errors import GatewayError
from sapproxy.registry import SURFACES, client_api_for
from sapproxy.web import admin, ops
from sapproxy.web.frame import ServicesRef, error_body
from sapproxy.web.routing import StaticRoutes


class GatewayKlein(Klein):
    """
    Klein, whose resource dispatches the fixed-path routes from a table (L{sapproxy.web.routing}).
    """

    def resource(self) -> StaticRoutes:
        return StaticRoutes(self)


def build_app(ref: ServicesRef, admin_backend: admin.AdminBackend | None = None) -> Klein:
    app = GatewayKlein()
    admin.install(app, ref, admin_backend)
    for surface in SURFACES:
        surface.install(app, ref)
    ops.install(app, ref)

    @app.handle_errors(NotFound)
    def not_found(request: Any, failure: Any) -> bytes:
        path = request.path.decode("latin-1", "replace")
        return error_body(request, client_api_for(request.path), GatewayError("not_found", f"no route for {path}"))

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(request: Any, failure: Any) -> bytes:
        method = request.method.decode("latin-1", "replace")
        path = request.path.decode("latin-1", "replace")
        allowed = ", ".join(failure.value.valid_methods or [])
        request.setHeader(b"allow", allowed.encode())
        return error_body(request, client_api_for(request.path),
                          GatewayError("method_not_allowed", f"{method} is not allowed on {path} (allowed: {allowed})"))

    return app
