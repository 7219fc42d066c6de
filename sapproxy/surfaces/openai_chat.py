"""
The OpenAI Chat Completions surface: C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy.dispatch.plan import ClientRequest
from sapproxy.errors import GatewayError
from sapproxy.translate.client.openai_chat import CLIENT_API
from sapproxy.auth import ClientIdentity
from sapproxy.record import RequestRecord
from sapproxy.web.frame import Route, ServicesRef
from sapproxy.web.images import inline_remote_images

PATH_PREFIX = b"/v1/chat/"


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
    route = Route(ref, CLIENT_API)

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            body = route.body(request, record)
            resolved = route.resolve(record, body, identity)
            route.announce(request, resolved)
            _check_chat(body)
            record.stream = bool(body.get("stream"))
            await route.limit(identity)
            body = await inline_remote_images(route.services.images, "openai", resolved, body)
            call = CLIENT_API.call(body, record.model_requested,
                                   {"always_include_usage": route.config.always_include_usage})
            del body  # the call holds it until the answer is committed, then lets it go
            return await route.forward(record, request, resolved.name, ClientRequest(CLIENT_API, call, {}))

        return await route.run(request, "/v1/chat/completions", work)
