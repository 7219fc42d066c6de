"""
The Anthropic Messages dialect.  Its bodies and events are the IR itself, so nothing is converted on the
client's side: Claude behind it is the IR path with the identity on this end (sanitised for the upstream by
the wire format), and every other family converts IR <-> its own format once.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sapproxy.errors import GatewayError
from sapproxy.interfaces import IClientAPI, IClientCall
from sapproxy.translate.counting import count_tokens, sketch_tokens
from sapproxy.translate.estimate import estimate_prompt
from sapproxy.translate.framing.sse import encode_event
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse, as_json, as_request

#: Gateway error kind -> Anthropic's error type.
ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "method_not_allowed": "invalid_request_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
}

#: What Anthropic's API itself writes into a quiet stream.
PING = b'event: ping\ndata: {"type": "ping"}\n\n'


@implementer(IClientCall)
class AnthropicMessagesCall:
    """
    One Messages request; the IR is the body.
    """

    __slots__ = ("body", "model", "stream", "hints", "_prompt")

    def __init__(self, body: dict[str, Any], model: str, hints: dict[str, Any]) -> None:
        self.body = body
        self.model = model
        self.stream = bool(body.get("stream"))
        self.hints = hints
        self._prompt: int | None = None

    def ir(self) -> IRRequest:
        return as_request(self.body)

    def response_from_ir(self, message: IRResponse) -> dict[str, Any]:
        return as_json(message)

    def stream_from_ir(self) -> list[Any]:
        return []

    def prompt_tokens(self, family: str) -> int:
        if self._prompt is not None:
            return self._prompt
        return estimate_prompt(count_tokens, self.body, family)

    def committed(self, family: str) -> None:
        if self._prompt is None:
            self._prompt = sketch_tokens(self.body, family)
        self.body = {}


@implementer(IClientAPI)
class AnthropicMessagesAPI:
    """
    The Anthropic Messages dialect (L{sapproxy.interfaces.IClientAPI}).
    """

    name = "anthropic"
    input_tokens_at_start = True
    native_wire = "anthropic_messages"
    done = b""
    keepalive = PING

    def call(self, body: dict[str, Any], model: str, hints: dict[str, Any]) -> AnthropicMessagesCall:
        return AnthropicMessagesCall(body, model, hints)

    def encode(self, event: Any) -> bytes:
        return encode_event(event)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(error.kind, "api_error"), "message": error.message}}

    def error_event(self, error: GatewayError) -> bytes:
        return encode_event(self.error_body(error))

    def prompt_tokens(self, body: dict[str, Any], family: str) -> int:
        return estimate_prompt(count_tokens, body, family)


CLIENT_API = AnthropicMessagesAPI()
