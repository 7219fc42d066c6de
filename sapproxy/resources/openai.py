"""
The OpenAI surface: C{/v1/chat/completions}, C{/v1/embeddings}, C{/v1/models}.
"""

from __future__ import annotations

import json
import time
from typing import Any

from klein import Klein

from sapproxy.errors import GatewayError
from sapproxy.exchanges import Exchange, _openai_usage
from sapproxy.resources._scaffold import Route, Services, ServicesRef
from sapproxy.translate.pipeline import StreamPipeline

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise GatewayError("invalid_request", "messages: required, a list of message objects", param="messages")
    if not messages:
        raise GatewayError("invalid_request", "messages: must contain at least one message", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GatewayError("invalid_request", f"messages[{i}]: expected an object with a role",
                               param=f"messages[{i}]")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise GatewayError("invalid_request", "stream: expected true or false", param="stream")


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, "openai")

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(request: Any) -> Any:
        async def work(ctx: Any, identity: Any) -> Any:
            body = route.body(request, ctx)
            resolved = route.resolve(ctx, body, identity)
            route.announce(request, resolved)
            _check_chat(body)
            ctx.stream = bool(body.get("stream"))
            await route.limit(identity)
            exchange = route.services.builder.build("openai", resolved, body)
            return await route.services.gateway.forward(ctx, request, resolved.name, exchange)

        return await route.run(request, "/v1/chat/completions", work)

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
            model = ctx.model_requested

            def convert(resp: dict[str, Any]) -> dict[str, Any]:
                resp["model"] = model
                return resp

            exchange = Exchange(
                path=f"/embeddings?api-version={route.config.api_version(resolved.name)}",
                body=_dumps(body).encode(), stream=False, pipeline=_no_stream, convert=convert, usage=_openai_usage,
            )
            return await route.services.gateway.forward(ctx, request, resolved.name, exchange)

        return await route.run(request, "/v1/embeddings", work)

    @app.route("/v1/models", methods=["GET"])
    async def models(request: Any) -> Any:
        async def work(ctx: Any, identity: Any) -> Any:
            created = int(route.config.path.stat().st_mtime) if route.config.path.exists() else int(time.time())
            names = route.services.catalog.names
            if identity.models is not None:
                names = [n for n in names if n in identity.models]
            data = [{"id": name, "object": "model", "created": created, "owned_by": _owner(route.services, name)}
                    for name in names]
            data += [{"id": alias, "object": "model", "created": created, "owned_by": _owner(route.services, target)}
                     for alias, target in route.config.aliases.items() if target in names]
            return {"object": "list", "data": data}

        return await route.run(request, "/v1/models", work)


def _owner(services: Services, name: str) -> str:
    return {"claude": "anthropic", "gemini": "google"}.get(services.catalog.family(name), "openai")


def _no_stream(_: str) -> StreamPipeline:
    raise AssertionError("embeddings never stream")
