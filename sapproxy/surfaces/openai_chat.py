"""
The OpenAI Chat Completions surface: C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy.errors import GatewayError
from sapproxy.web.frame import Route, ServicesRef


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
    if "stream_options" in body and not isinstance(body["stream_options"], (dict, type(None))):
        raise GatewayError("invalid_request", "stream_options: expected an object", param="stream_options")
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
