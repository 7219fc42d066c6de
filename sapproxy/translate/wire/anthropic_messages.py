"""
Anthropic's own Messages API as an upstream wire format: the IR is this format, so a request is the IR with
the upstream's model id, and an Anthropic client's body and stream pass through as they are (the stream's
C{message_start} names the model the client asked for, as every answer of the gateway does).

Betas travel as the C{anthropic-beta} header, which the provider sets (its own from the config and the
client's, L{WireTarget.anthropic_beta}); keys that only Bedrock knows are removed.
"""

from __future__ import annotations

from typing import Any, Mapping

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate.framing.pipeline import SSEJsonSource
from sapproxy.translate.jsontext import json_text
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse, as_json as ir_json
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire import NoEmbeddings, WireRequest, WireTarget
from sapproxy.translate.wire.bedrock_invoke import BedrockStreamNormaliser, bedrock_invoke_response

#: Keys of Bedrock's invoke body that the Messages API refuses.
_BEDROCK_ONLY = ("anthropic_version", "anthropic_beta")


def messages_body(body: Mapping[str, Any], model: str, stream: bool) -> dict[str, Any]:
    out = {key: value for key, value in body.items() if key not in _BEDROCK_ONLY}
    out["model"] = model
    if stream:
        out["stream"] = True
    else:
        out.pop("stream", None)
    return out


def _betas(target: WireTarget) -> tuple[tuple[bytes, bytes], ...]:
    beta = (target.anthropic_beta or "").strip()
    return ((b"anthropic-beta", beta.encode("latin-1")),) if beta else ()


@implementer(IWireFormat)
class AnthropicMessagesWire(NoEmbeddings):
    name = "anthropic_messages"
    fit_kind = "anthropic"
    input_tokens_at_end = False
    dialect_of = "anthropic_messages"

    def request(self, ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        return WireRequest("messages", json_text(messages_body(ir, target.model, stream)), stream, _betas(target))

    def passthrough(self, call: Any, target: WireTarget) -> WireRequest:
        return WireRequest("messages", json_text(messages_body(call.body, target.model, call.stream)), call.stream,
                           _betas(target))

    def stream_source(self, content_type: str) -> Any:
        return SSEJsonSource()

    def stream_to_ir(self, model: str, message_id: str) -> list[Any]:
        return [BedrockStreamNormaliser(model)]

    def passthrough_stream(self, call: Any) -> list[Any]:
        return [BedrockStreamNormaliser(call.model)]

    def response_to_ir(self, response: dict[str, Any], model: str) -> IRResponse:
        return bedrock_invoke_response(response, model)

    def passthrough_response(self, response: dict[str, Any], call: Any) -> dict[str, Any]:
        return ir_json(bedrock_invoke_response(response, call.model))

    def usage(self, response: dict[str, Any]) -> Usage | None:
        usage = response.get("usage")
        return Usage.from_anthropic(usage) if isinstance(usage, dict) else None


WIRE_FORMAT = AnthropicMessagesWire()
