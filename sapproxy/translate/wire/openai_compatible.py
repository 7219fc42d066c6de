"""
The OpenAI Chat Completions wire format as OpenAI itself and OpenAI-compatible servers (vLLM, Ollama's
C{/v1}, LM Studio) serve it: Azure's format, except that the body names the model, by the upstream's id.

Everything else (conversion to and from the IR, streams, usage) is L{sapproxy.translate.wire.openai_chat}'s.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate.jsontext import json_text
from sapproxy.translate.ir import Request as IRRequest
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.translate.wire.openai_chat import OpenAIChatWire, ir_request_to_chat


@implementer(IWireFormat)
class OpenAICompatibleWire(OpenAIChatWire):
    name = "openai_compatible"
    #: An OpenAI client's body passes through, as to Azure (L{sapproxy.dispatch.plan}).
    dialect_of = "openai_chat"

    def request(self, ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        body = ir_request_to_chat(ir, reasoning_model=target.reasoning)
        body["model"] = target.model
        return WireRequest("chat/completions", json_text(body), stream)

    def passthrough(self, call: Any, target: WireTarget) -> WireRequest:
        body = dict(call.body)
        body["model"] = target.model
        if call.stream:
            # Usage is always asked for, to account for the request; the client sees it only if it asked.
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return WireRequest("chat/completions", json_text(body), call.stream)

    def embeddings(self, body: dict[str, Any], target: WireTarget) -> WireRequest:
        # The body names the model: the upstream's own id for it.
        return WireRequest("embeddings", json_text({**body, "model": target.model}), False)


WIRE_FORMAT = OpenAICompatibleWire()
