"""
The Anthropic surface: C{/v1/messages}, C{/v1/messages/count_tokens}, and the telemetry Claude Code posts.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy.dispatch.plan import ClientRequest
from sapproxy.errors import GatewayError
from sapproxy.translate.client.anthropic_messages import CLIENT_API
from sapproxy.auth import ClientIdentity
from sapproxy.record import RequestRecord
from sapproxy.web.frame import Route, ServicesRef, json_body
from sapproxy.web.images import inline_remote_images
from sapproxy.translate.counting import count_tokens

PATH_PREFIX = b"/v1/messages"


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
    route = Route(ref, CLIENT_API)

    @app.route("/v1/messages", methods=["POST"])
    async def messages(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            body = route.body(request, record)
            resolved = route.resolve(record, body, identity)
            route.announce(request, resolved)
            _check_messages(body)
            record.stream = bool(body.get("stream"))
            await route.limit(identity)
            beta = request.getHeader(b"anthropic-beta")
            body = await inline_remote_images(route.services.images, "anthropic", resolved, body)
            hints = {"anthropic-beta": beta.decode("latin-1")} if beta else {}
            call = CLIENT_API.call(body, record.model_requested, hints)
            del body  # the call holds it until the answer is committed, then lets it go
            return await route.forward(record, request, resolved.name, ClientRequest(CLIENT_API, call, hints))

        return await route.run(request, "/v1/messages", work)

    @app.route("/v1/messages/count_tokens", methods=["POST"])
    async def count(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            body = route.body(request, record)
            resolved = route.resolve(record, body, identity)
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
