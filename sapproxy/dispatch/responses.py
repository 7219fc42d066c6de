"""
What to send upstream for a Responses API request, per family, and what the request leaves to store.

GPT deployments answer C{/responses} natively (L{sapproxy.translate.wire.openai_responses}); Claude and Gemini
go through the IR like every other translated request (L{ExchangeBuilder._from_ir}), with the Responses
translators on the client side.  A L{ResponsesExchange} remembers the translator (or whole response) of the
attempt that answered, so the route can store the finished response for C{previous_response_id}.
"""

from __future__ import annotations

from typing import Any

from attrs import define, field

from sapproxy.config import GatewayConfig, is_reasoning_model
from sapproxy.dispatch.plan import Exchange, ExchangeBuilder
from sapproxy.models import ResolvedModel
from sapproxy.translate.client.openai_responses import (
    IRToResponsesStream, ResponseFrame, client_view, ir_message_to_response, responses_request_to_ir,
    usage_from_responses,
)
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline, Translator
from sapproxy.translate.framing.sse import encode_event
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire.openai_responses import ResponsesPassthrough, gpt_request, native_response

import json

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: The first Azure OpenAI api-version with the Responses API; used unless the model's configured one is newer.
RESPONSES_API_VERSION = "2025-04-01-preview"


def responses_api_version(config: GatewayConfig, model: str) -> str:
    configured = config.model_settings(model).api_version
    return configured if configured and configured >= RESPONSES_API_VERSION else RESPONSES_API_VERSION


@define
class ResponsesExchange:
    """
    @ivar exchange: what the gateway sends and how it reads the answer.
    @ivar ir: the IR request (Claude, Gemini), for the prompt estimate; None for GPT.
    """

    exchange: Exchange
    ir: dict[str, Any] | None
    _translators: list[Any] = field(factory=list)
    _whole: list[dict[str, Any]] = field(factory=list)

    @property
    def final(self) -> dict[str, Any] | None:
        """The finished response object of the attempt that answered (every encrypted content kept)."""
        if self._whole:
            return self._whole[-1]
        if self._translators:
            return self._translators[-1].final  # type: ignore[no-any-return]
        return None


def build_responses_exchange(builder: ExchangeBuilder, config: GatewayConfig, resolved: ResolvedModel,
                             body: dict[str, Any], frame: ResponseFrame,
                             history: list[dict[str, Any]]) -> ResponsesExchange:
    """
    @raise InvalidRequest: the body cannot be converted (the route answers 400).
    """
    stream = bool(body.get("stream"))
    if resolved.family == "openai":
        upstream = gpt_request(body, frame.tools, model=resolved.name,
                               reasoning_model=is_reasoning_model(resolved.name), history=history)
        result = ResponsesExchange(exchange=None, ir=None)  # type: ignore[arg-type]

        def gpt_pipeline(_: str) -> StreamPipeline:
            translator = ResponsesPassthrough(frame)
            result._translators.append(translator)
            return StreamPipeline(SSEJsonSource(), [translator], encode_event)

        def gpt_convert(resp: dict[str, Any]) -> dict[str, Any]:
            full = native_response(resp, frame)
            result._whole.append(full)
            return client_view(full, frame)

        def gpt_usage(resp: dict[str, Any]) -> Usage | None:
            return usage_from_responses(resp.get("usage"))

        result.exchange = Exchange(
            path=f"/responses?api-version={responses_api_version(config, resolved.name)}",
            body=_dumps(upstream).encode(), stream=stream, pipeline=gpt_pipeline, convert=gpt_convert,
            usage=gpt_usage)
        return result

    ir = responses_request_to_ir(body, frame.tools, history)
    result = ResponsesExchange(exchange=None, ir=ir)  # type: ignore[arg-type]

    def client_side(upstream_side: list[Translator]) -> list[Translator]:
        translator = IRToResponsesStream(frame)
        result._translators.append(translator)
        return upstream_side + [translator]

    def convert(message: dict[str, Any]) -> dict[str, Any]:
        full = ir_message_to_response(message, frame)
        result._whole.append(full)
        return client_view(full, frame)

    result.exchange = builder._from_ir(resolved, ir, stream, client_side, convert, encode_event, None)
    return result
