"""
The Gemini wire format: Gemini / Vertex AI (C{generateContent}, C{streamGenerateContent}) upstreams behind the IR.

Request: L{ir_request_to_gemini}.  Response: L{gemini_response_to_ir}.  Stream: L{GeminiToAnthropicStream}.

Thought signatures
==================

Gemini 3 attaches an opaque C{thoughtSignature} to the part that follows its (hidden) reasoning: a
C{functionCall} part, a text part, or an otherwise empty text part C{{"text": "", "thoughtSignature": ...}}.
It must be sent back on the same kind of part in the next request, or Gemini loses (or, for function calls,
refuses) the reasoning context.  The IR carries it as a B{thinking block}:

  - a C{thought: true} part becomes C{{"type": "thinking", "thinking": <text>, "signature": <its
    thoughtSignature or "">}};
  - any other part with a C{thoughtSignature} is preceded by C{{"type": "thinking", "thinking": "",
    "signature": <thoughtSignature>}} (so an empty signature-only part becomes just that thinking block).

On the way back (L{ir_request_to_gemini}) a thinking block's thought text is not resent (Gemini does not
want thought summaries back), but a non-empty C{signature} is attached to the B{next} part built from the
same assistant turn; a signature with nothing after it becomes C{{"text": "", "thoughtSignature": ...}}.
So C{[functionCall+sig]} -> C{[thinking(sig), tool_use]} -> C{[functionCall+sig]}, and
C{[text, text""+sig]} -> C{[text, thinking(sig)]} -> C{[text, text""+sig]}: the signature survives any
client that returns thinking blocks as Anthropic requires.  C{redacted_thinking} blocks (never produced
here) are dropped on the way to Gemini.

Tool call ids
=============

Gemini function calls have no ids (or optional ones the Gemini API does not require back); tool_use ids are
derived deterministically from the message id and the call's position (C{toolu_<hash>}), and a tool_result's
C{functionResponse.name} is found from the matching tool_use earlier in the conversation.
"""

from typing import Any

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate.framing.pipeline import SSEJsonSource
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.jsontext import json_text
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire import NoEmbeddings, NoNativeClient, WireRequest, WireTarget
from sapproxy.translate.wire.gemini.request import ir_request_to_gemini
from sapproxy.translate.wire.gemini.response import gemini_error_event, gemini_response_to_ir, stop_reason, tool_use_id
from sapproxy.translate.wire.gemini.schema import clean_schema
from sapproxy.translate.wire.gemini.stream import GeminiToAnthropicStream, apply_partial_arg

__all__ = [
    "WIRE_FORMAT",
    "GeminiToAnthropicStream", "apply_partial_arg", "clean_schema", "gemini_error_event", "gemini_response_to_ir",
    "ir_request_to_gemini", "stop_reason", "tool_use_id",
]


@implementer(IWireFormat)
class GeminiWire(NoNativeClient, NoEmbeddings):
    """
    Gemini's C{generateContent} / C{streamGenerateContent} (L{sapproxy.interfaces.IWireFormat}), as Vertex AI
    and the Gemini API serve it.
    """

    name = "gemini"
    fit_kind = "gemini"
    input_tokens_at_end = True
    dialect_of = "gemini"

    def request(self, ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        return WireRequest("generateContent", json_text(ir_request_to_gemini(ir, model=target.model)), stream)

    def stream_source(self, content_type: str) -> Any:
        return SSEJsonSource()

    def stream_to_ir(self, model: str, message_id: str) -> list[Any]:
        return [GeminiToAnthropicStream(model, message_id=message_id)]

    def response_to_ir(self, response: dict[str, Any], model: str) -> IRResponse:
        return gemini_response_to_ir(response, model)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return Usage.from_gemini(response.get("usageMetadata") or {})


WIRE_FORMAT = GeminiWire()
