"""
The Anthropic surface: C{/v1/messages}, C{/v1/messages/count_tokens}, and the telemetry Claude Code posts.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy.errors import GatewayError
from sapproxy.web.frame import Route, ServicesRef, json_body
from sapproxy.translate.counting import count_tokens


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise GatewayError("invalid_request", "messages: Field required (a list of message objects)",
                           param="messages")
    if not messages:
        raise GatewayError("invalid_request", "messages: at least one message is required", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise GatewayError("invalid_request", f"messages.{i}.role: expected user or assistant",
                               param=f"messages.{i}")
        if not isinstance(message.get("content"), (str, list)):
            raise GatewayError("invalid_request", f"messages.{i}.content: expected a string or a list of blocks",
                               param=f"messages.{i}.content")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise GatewayError("invalid_request", "max_tokens: Field required (a positive integer)", param="max_tokens")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise GatewayError("invalid_request", "stream: expected true or false", param="stream")


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, "anthropic")

    @app.route("/v1/messages", methods=["POST"])
    async def messages(request: Any) -> Any:
        async def work(ctx: Any, identity: Any) -> Any:
            body = route.body(request, ctx)
            resolved = route.resolve(ctx, body, identity)
            route.announce(request, resolved)
            _check_messages(body)
            ctx.stream = bool(body.get("stream"))
            await route.limit(identity)
            beta = request.getHeader(b"anthropic-beta")
            exchange = route.services.builder.build("anthropic", resolved, body,
                                              anthropic_beta=beta.decode("latin-1") if beta else None)
            return await route.services.gateway.forward(ctx, request, resolved.name, exchange)

        return await route.run(request, "/v1/messages", work)

    @app.route("/v1/messages/count_tokens", methods=["POST"])
    async def count(request: Any) -> Any:
        async def work(ctx: Any, identity: Any) -> Any:
            body = route.body(request, ctx)
            resolved = route.resolve(ctx, body, identity)
            route.announce(request, resolved)
            if not isinstance(body.get("messages"), list):
                raise GatewayError("invalid_request", "messages: Field required", param="messages")
            # Counted like any request: a key's requests-per-minute limit covers its counting too.
            await route.limit(identity)
            return {"input_tokens": count_tokens(body, resolved.family)}

        return await route.run(request, "/v1/messages/count_tokens", work)

    @app.route("/api/event_logging/batch", methods=["POST"])
    def event_logging(request: Any) -> bytes:
        # Claude Code's own telemetry: accepted and dropped, so it does not show as errors.
        return json_body(request, 200, {})
