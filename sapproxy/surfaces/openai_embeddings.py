"""
The OpenAI Embeddings surface: C{POST /v1/embeddings}, served by GPT-family deployments as they are.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy.errors import GatewayError
from sapproxy.web.frame import Route, ServicesRef


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, "openai")

    @app.route("/v1/embeddings", methods=["POST"])
    async def embeddings(request: Any) -> Any:
        async def work(ctx: Any, identity: Any) -> Any:
            body = route.body(request, ctx)
            resolved = route.resolve(ctx, body, identity)
            route.announce(request, resolved)
            if resolved.family != "openai":
                raise GatewayError("invalid_request", f"model {ctx.model_requested!r} does not serve embeddings",
                                   param="model")
            given = body.get("input")
            if not (isinstance(given, str) or (isinstance(given, list) and given)):
                raise GatewayError("invalid_request", "input: required, a string or a non-empty list", param="input")
            if body.get("encoding_format", "float") not in ("float", "base64"):
                raise GatewayError("invalid_request", "encoding_format: expected float or base64",
                                   param="encoding_format")
            await route.limit(identity)
            exchange = route.services.builder.embeddings(resolved, body)
            return await route.services.gateway.forward(ctx, request, resolved.name, exchange)

        return await route.run(request, "/v1/embeddings", work)
