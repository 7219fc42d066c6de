"""
The IR types (L{sapproxy.translate.ir}) say what the converters really exchange: every field they declare is
one Anthropic's own SDK knows, and what the converters produce from the recorded streams and responses checks
against them.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import anthropic.types as sdk
import pytest
from anthropic.types import message_create_params
from conftest import FIXTURES, fixture_path
from pydantic import TypeAdapter
from test_tr_openai_support import openai_chunks

from sapproxy.translate import ir
from sapproxy.translate.client.openai_chat import chat_request_to_ir
from sapproxy.translate.wire.converse import ConverseToAnthropicStream, converse_response_to_ir, parse_converse_stream_line
from sapproxy.translate.wire.gemini import GeminiToAnthropicStream, gemini_response_to_ir
from sapproxy.translate.wire.openai_chat import OpenAIToAnthropicStream, chat_response_to_ir


def _keys(kind: Any) -> set[str]:
    """The fields of a TypedDict, a pydantic model, or a union of either."""
    if typing.get_origin(kind) in (typing.Union,):
        return set().union(*(_keys(member) for member in typing.get_args(kind)))
    if hasattr(kind, "model_fields"):
        return set(kind.model_fields)
    return set(kind.__required_keys__) | set(kind.__optional_keys__)


#: Each IR type beside the SDK type it stands for.
PAIRS = [
    (ir.CacheControl, sdk.CacheControlEphemeralParam),
    (ir.Base64Source, sdk.Base64ImageSourceParam),
    (ir.URLSource, sdk.URLImageSourceParam),
    (ir.TextSource, sdk.PlainTextSourceParam),
    (ir.TextBlock, sdk.TextBlockParam),
    (ir.ImageBlock, sdk.ImageBlockParam),
    (ir.DocumentBlock, sdk.DocumentBlockParam),
    (ir.ToolUseBlock, sdk.ToolUseBlockParam),
    (ir.ToolResultBlock, sdk.ToolResultBlockParam),
    (ir.ThinkingBlock, sdk.ThinkingBlockParam),
    (ir.RedactedThinkingBlock, sdk.RedactedThinkingBlockParam),
    (ir.Message, sdk.MessageParam),
    (ir.Tool, sdk.ToolParam),
    (ir.ToolChoice, sdk.ToolChoiceParam),
    (ir.ThinkingConfig, sdk.ThinkingConfigParam),
    (ir.Request, message_create_params.MessageCreateParamsNonStreaming),
    (ir.Usage, sdk.Usage),
    (ir.Response, sdk.Message),
    (ir.TextDelta, sdk.TextDelta),
    (ir.InputJSONDelta, sdk.InputJSONDelta),
    (ir.ThinkingDelta, sdk.ThinkingDelta),
    (ir.SignatureDelta, sdk.SignatureDelta),
    (ir.MessageStartEvent, sdk.RawMessageStartEvent),
    (ir.ContentBlockStartEvent, sdk.RawContentBlockStartEvent),
    (ir.ContentBlockDeltaEvent, sdk.RawContentBlockDeltaEvent),
    (ir.ContentBlockStopEvent, sdk.RawContentBlockStopEvent),
    (ir.MessageDeltaEvent, sdk.RawMessageDeltaEvent),
    (ir.MessageStopEvent, sdk.RawMessageStopEvent),
]

#: Fields the SDK in use does not declare: the IR's own side key, and the sampling parameters that clients
#: still send and GPT/Gemini/Converse still take, which the Messages API (SDK 2.x) no longer lists.
SIDE_KEYS = {ir.Request: {"_response_format", "_max_tokens_default", "_sampling", "temperature", "top_p", "top_k"},
             ir.Usage: {"output_tokens_details"}}


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=lambda t: getattr(t, "__name__", str(t)))
def test_every_declared_field_is_anthropics(ours: Any, theirs: Any) -> None:
    assert _keys(ours) - SIDE_KEYS.get(ours, set()) <= _keys(theirs)
    assert _keys(ours), "an empty type describes nothing"


def test_stop_details_is_known_to_the_sdk_message() -> None:
    # Response.stop_details and MessageDeltaBody.stop_details are newer fields; the SDK in use knows them.
    assert "stop_details" in sdk.Message.model_fields
    assert "stop_details" in _keys(sdk.raw_message_delta_event.Delta)


_events = TypeAdapter(list[ir.StreamEvent])
_response = TypeAdapter(ir.Response)
_request = TypeAdapter(ir.Request)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stream(converter: Any, chunks: list[dict[str, Any]]) -> list[Any]:
    out = [event for chunk in chunks for event in converter.feed(chunk)]
    return out + converter.finish()


@pytest.mark.parametrize("path", sorted((FIXTURES / "gemini").glob("*.chunks.txt")), ids=lambda p: p.name)
def test_gemini_events_are_ir_events(path: Path) -> None:
    events = _stream(GeminiToAnthropicStream("m", message_id="msg_1"), _lines(path))
    assert len(_events.validate_python(events, strict=True)) == len(events)


@pytest.mark.parametrize("path", sorted((FIXTURES / "bedrock").glob("*.chunks.txt")), ids=lambda p: p.name)
def test_converse_events_are_ir_events(path: Path) -> None:
    source = [parse_converse_stream_line(line) for line in path.read_text().splitlines() if line.strip()]
    events = _stream(ConverseToAnthropicStream("m", message_id="msg_1"), source)
    _events.validate_python(events, strict=True)


@pytest.mark.parametrize("name", ["openai/openai-text.chunks.txt", "openai/azure-model-router.1.chunks.txt",
                                  "openai/chat-streaming.yaml", "openai/chat-tools.yaml", "openai/chat-reasoning.yaml"])
def test_gpt_events_are_ir_events(name: str) -> None:
    events = _stream(OpenAIToAnthropicStream("m"), openai_chunks(fixture_path(name)))
    _events.validate_python(events, strict=True)


def test_whole_responses_are_ir_messages() -> None:
    gpt = json.loads(fixture_path("openai/openai-text.json").read_text())
    _response.validate_python(chat_response_to_ir(gpt, "m"), strict=True)
    gemini = {"candidates": [{"content": {"parts": [{"text": "hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]},
                              "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}}
    _response.validate_python(gemini_response_to_ir(gemini, "m"), strict=True)
    converse = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "SIG"}}}, {"text": "Hi"},
        {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 1, "outputTokens": 2}}
    _response.validate_python(converse_response_to_ir(converse, "m", message_id="msg_1"), strict=True)


def test_a_converted_chat_request_is_an_ir_request() -> None:
    body = {
        "model": "claude", "max_tokens": 50, "temperature": 0.5, "stop": ["x"], "user": "u",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
    }
    request = chat_request_to_ir(body)
    _request.validate_python(request, strict=True)
    assert {b["type"] for m in request["messages"] for b in m["content"] if isinstance(b, dict)} == \
        {"text", "image", "tool_use", "tool_result"}
