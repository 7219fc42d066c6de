"""
What to send upstream and how to read the answer, for each client dialect and model family.

An L{Exchange} is built once per request from the client's body; the dispatcher may send it to several
deployments (failover) and only asks it for a path, a body, and a pipeline or converter for the answer.
Same dialect on both sides passes through (sanitised); otherwise the request goes through the IR (the
Anthropic Messages format) in L{sapproxy.translate}.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from attrs import frozen

from sapproxy.config import GatewayConfig, is_reasoning_model
from sapproxy.models import ResolvedModel
from sapproxy.translate.wire.bedrock_invoke import BedrockStreamNormaliser, bedrock_invoke_body, bedrock_invoke_response
from sapproxy.translate.wire.converse import (
    ConverseToAnthropicStream, converse_response_to_ir, ir_request_to_converse, parse_converse_stream_line,
)
from sapproxy.translate.framing.eventstream import EventStreamDecoder
from sapproxy.translate.ids import random_hex
from sapproxy.translate.wire.gemini import GeminiToAnthropicStream, gemini_response_to_ir, ir_request_to_gemini
from sapproxy.translate.client.openai_chat import AnthropicToOpenAIStream, chat_request_to_ir, ir_response_to_chat
from sapproxy.translate.wire.openai_chat import OpenAIToAnthropicStream, chat_response_to_ir, ir_request_to_chat
from sapproxy.translate.wire.openai_passthrough import OpenAIPassthrough, openai_response, parse_keeping_bytes
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline, Translator
from sapproxy.translate.framing.sse import encode_data, encode_event
from sapproxy.translate.usage import Usage

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@frozen
class Exchange:
    """
    @ivar path: appended to the deployment URL.
    @ivar body: the upstream request body.
    @ivar stream: whether the upstream answers with a stream.
    @ivar pipeline: for a stream, a new pipeline for the upstream's Content-Type.
    @ivar convert: for a whole response, upstream JSON to the client's JSON.
    @ivar usage: for a whole response, the token counts in the upstream JSON.
    """

    path: str
    body: bytes
    stream: bool
    pipeline: Callable[[str], StreamPipeline]
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    usage: Callable[[dict[str, Any]], Usage | None]


def _message_usage(resp: dict[str, Any]) -> Usage | None:
    usage = resp.get("usage")
    return Usage.from_anthropic(usage) if isinstance(usage, dict) else None


def _openai_usage(resp: dict[str, Any]) -> Usage | None:
    usage = resp.get("usage")
    return Usage.from_openai(usage) if isinstance(usage, dict) else None


def _claude_source(content_type: str) -> Any:
    if "amazon.eventstream" in content_type:
        return EventStreamDecoder()
    return SSEJsonSource()


def _never_streams(_: str) -> StreamPipeline:
    raise AssertionError("embeddings never stream")


class ExchangeBuilder:
    def __init__(self, config: GatewayConfig) -> None:
        self._config = config

    def build(self, dialect: str, resolved: ResolvedModel, body: dict[str, Any], *,
              anthropic_beta: str | None = None) -> Exchange:
        """
        @raise InvalidRequest: the body cannot be converted (the route answers 400).
        """
        family = resolved.family
        if dialect == "openai":
            if family == "openai":
                return self._openai_to_gpt(resolved, body)
            ir = chat_request_to_ir(body)
            stream = bool(body.get("stream"))
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            wants_usage = wants_usage or self._config.always_include_usage
            created = int(time.time())
            completion_id = "chatcmpl-" + random_hex(24)
            model = resolved.requested

            def to_openai(upstream: list[Translator]) -> list[Translator]:
                return upstream + [AnthropicToOpenAIStream(
                    model, completion_id=completion_id, created=created, include_usage=wants_usage)]

            def convert(message: dict[str, Any]) -> dict[str, Any]:
                return ir_response_to_chat(message, model, created=created, completion_id=completion_id)

            return self._from_ir(resolved, ir, stream, to_openai, convert, encode_data, None)
        if family == "claude" and not self._config.model_settings(resolved.name).converse:
            return self._anthropic_to_claude(resolved, body, anthropic_beta)
        stream = bool(body.get("stream"))
        return self._from_ir(resolved, body, stream, lambda up: up, lambda m: m, encode_event, anthropic_beta)

    def embeddings(self, resolved: ResolvedModel, body: dict[str, Any]) -> Exchange:
        """
        An embeddings request, sent to a GPT-family deployment as it is; the response names the client's model.
        """
        model = resolved.requested

        def convert(resp: dict[str, Any]) -> dict[str, Any]:
            resp["model"] = model
            return resp

        return Exchange(path=f"/embeddings?api-version={self._config.api_version(resolved.name)}",
                        body=_dumps(body).encode(), stream=False, pipeline=_never_streams, convert=convert,
                        usage=_openai_usage)

    def _openai_to_gpt(self, resolved: ResolvedModel, body: dict[str, Any]) -> Exchange:
        stream = bool(body.get("stream"))
        model = resolved.requested
        upstream = dict(body)
        client_wants_usage = False
        if stream:
            options = dict(upstream.get("stream_options") or {})
            client_wants_usage = bool(options.get("include_usage"))
            options["include_usage"] = True
            upstream["stream_options"] = options
        path = f"/chat/completions?api-version={self._config.api_version(resolved.name)}"
        return Exchange(
            path=path, body=_dumps(upstream).encode(), stream=stream,
            pipeline=lambda _: StreamPipeline(
                SSEJsonSource(parse_keeping_bytes), [OpenAIPassthrough(model, client_wants_usage=client_wants_usage)],
                encode_data),
            convert=lambda resp: openai_response(resp, model), usage=_openai_usage,
        )

    def _anthropic_to_claude(self, resolved: ResolvedModel, body: dict[str, Any], beta: str | None) -> Exchange:
        stream = bool(body.get("stream"))
        model = resolved.requested
        upstream = bedrock_invoke_body(body, anthropic_beta=beta)
        return Exchange(
            path="/invoke-with-response-stream" if stream else "/invoke",
            body=_dumps(upstream).encode(), stream=stream,
            pipeline=lambda ct: StreamPipeline(_claude_source(ct), [BedrockStreamNormaliser(model)], encode_event),
            convert=lambda resp: bedrock_invoke_response(resp, model), usage=_message_usage,
        )

    def _from_ir(self, resolved: ResolvedModel, ir: dict[str, Any], stream: bool,
                 client_side: Callable[[list[Translator]], list[Translator]],
                 convert_message: Callable[[dict[str, Any]], dict[str, Any]],
                 encode: Callable[[Any], bytes], beta: str | None) -> Exchange:
        """
        An IR request to whichever family serves it; C{client_side} adds the translators from IR events
        to the client's dialect, C{convert_message} turns an IR message into the client's response.
        """
        model = resolved.requested
        family = resolved.family
        message_id = "msg_" + random_hex(24)
        settings = self._config.model_settings(resolved.name)
        if family == "openai":
            reasoning = is_reasoning_model(resolved.name)
            upstream = ir_request_to_chat(ir, reasoning_model=reasoning)
            path = f"/chat/completions?api-version={self._config.api_version(resolved.name)}"

            def openai_pipeline(_: str) -> StreamPipeline:
                return StreamPipeline(SSEJsonSource(), client_side([OpenAIToAnthropicStream(model, message_id=message_id)]), encode)

            return Exchange(path, _dumps(upstream).encode(), stream, openai_pipeline,
                            lambda resp: convert_message(chat_response_to_ir(resp, model)), _openai_usage)
        if family == "gemini":
            upstream_model = settings.upstream_model or resolved.name
            upstream = ir_request_to_gemini(ir, model=upstream_model)
            path = f"/models/{upstream_model}:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")

            def gemini_pipeline(_: str) -> StreamPipeline:
                return StreamPipeline(SSEJsonSource(), client_side([GeminiToAnthropicStream(model, message_id=message_id)]), encode)

            return Exchange(path, _dumps(upstream).encode(), stream, gemini_pipeline,
                            lambda resp: convert_message(gemini_response_to_ir(resp, model)),
                            lambda resp: Usage.from_gemini(resp.get("usageMetadata") or {}))
        if settings.converse:
            upstream = ir_request_to_converse(ir)

            def converse_pipeline(_: str) -> StreamPipeline:
                return StreamPipeline(SSEJsonSource(parse_converse_stream_line),
                                      client_side([ConverseToAnthropicStream(model, message_id=message_id)]), encode)

            return Exchange("/converse-stream" if stream else "/converse", _dumps(upstream).encode(), stream,
                            converse_pipeline, lambda resp: convert_message(converse_response_to_ir(resp, model)),
                            lambda resp: Usage.from_converse(resp.get("usage") or {}))
        upstream = bedrock_invoke_body(ir, anthropic_beta=beta)

        def claude_pipeline(content_type: str) -> StreamPipeline:
            return StreamPipeline(_claude_source(content_type), client_side([BedrockStreamNormaliser(model)]), encode)

        return Exchange("/invoke-with-response-stream" if stream else "/invoke", _dumps(upstream).encode(), stream,
                        claude_pipeline, lambda resp: convert_message(bedrock_invoke_response(resp, model)),
                        _message_usage)
