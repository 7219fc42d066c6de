"""
The internal representation (IR) between dialects, as types: the Anthropic Messages API.

Every client dialect converts to these shapes and every wire format converts from them (and back), so a
reader of one converter knows what the other side hands it without reading the other side.  They are
C{TypedDict}s: at run time the IR stays plain JSON-shaped dicts (no copies, no validation cost on the hot
path); the types are for mypy and for the reader.

Two things the types do not promise, on purpose:

  - B{Validity.}  A request in the IR may come straight from a client (the Anthropic surface hands the
    body over as it came), so a converter taking a L{Request} still checks what it reads and answers
    L{sapproxy.translate.errors.InvalidRequest} naming the bad path.
  - B{Completeness.}  Anthropic adds fields and block types often; the IR carries unknown ones through
    untouched (same-format pass-through relies on it).  Only the fields some converter reads or writes are
    declared here.

Optional fields are C{NotRequired} (or the whole class is C{total=False} where nearly every field is).

Where JSON from outside becomes the IR (a client's Anthropic body, an Anthropic upstream's own response) or
code reads the IR defensively as plain JSON, L{as_request}, L{as_response} and L{as_json} say so: they are
casts, free at run time, named so that the boundary is visible.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Union, cast

# typing_extensions's TypedDict, so that pydantic can check values against these types (tests do).
from typing_extensions import NotRequired, TypedDict

__all__ = [
    "CacheControl",
    "Base64Source",
    "URLSource",
    "TextSource",
    "ImageBlock",
    "DocumentBlock",
    "TextBlock",
    "ToolUseBlock",
    "ToolResultBlock",
    "ThinkingBlock",
    "RedactedThinkingBlock",
    "ContentBlock",
    "Message",
    "Tool",
    "ToolChoice",
    "ThinkingConfig",
    "Request",
    "Usage",
    "Response",
    "TextDelta",
    "InputJSONDelta",
    "ThinkingDelta",
    "SignatureDelta",
    "BlockDelta",
    "MessageStartEvent",
    "ContentBlockStartEvent",
    "ContentBlockDeltaEvent",
    "ContentBlockStopEvent",
    "MessageDeltaBody",
    "MessageDeltaEvent",
    "MessageStopEvent",
    "ErrorBody",
    "ErrorEvent",
    "StreamEvent",
    "as_request",
    "as_response",
    "as_json",
]


# ---------------------------------------------------------------------------------------------- content


class CacheControl(TypedDict):
    type: Literal["ephemeral"]
    ttl: NotRequired[str]


class Base64Source(TypedDict):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(TypedDict):
    type: Literal["url"]
    url: str


class TextSource(TypedDict):
    """A plain-text document's source."""

    type: Literal["text"]
    media_type: NotRequired[str]
    data: str


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str
    cache_control: NotRequired[CacheControl]
    citations: NotRequired[list[dict[str, Any]]]


class ImageBlock(TypedDict):
    type: Literal["image"]
    source: Union[Base64Source, URLSource]
    cache_control: NotRequired[CacheControl]


class DocumentBlock(TypedDict):
    type: Literal["document"]
    source: Union[Base64Source, URLSource, TextSource]
    title: NotRequired[str]
    context: NotRequired[str]
    citations: NotRequired[dict[str, Any]]
    cache_control: NotRequired[CacheControl]


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: NotRequired[CacheControl]


class ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[Union[str, list[Union[TextBlock, ImageBlock, DocumentBlock]]]]
    is_error: NotRequired[bool]
    cache_control: NotRequired[CacheControl]


class ThinkingBlock(TypedDict):
    """
    A thinking block; C{signature} is empty when the thinking came from a model that signs nothing (GPT's
    reasoning, Gemini thought text without a signature).
    """

    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = Union[
    TextBlock, ImageBlock, DocumentBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock
]


# ---------------------------------------------------------------------------------------------- requests


class Message(TypedDict):
    role: Literal["user", "assistant"]
    content: Union[str, list[ContentBlock]]


class Tool(TypedDict, total=False):
    """A client tool (C{input_schema}) or a server tool (C{type} names it, other fields are its own)."""

    type: str
    name: str
    description: str
    input_schema: dict[str, Any]
    cache_control: CacheControl


class ToolChoice(TypedDict, total=False):
    type: Literal["auto", "any", "tool", "none"]
    name: str
    disable_parallel_tool_use: bool


class ThinkingConfig(TypedDict, total=False):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int


class Request(TypedDict, total=False):
    """
    A Messages request body, with the IR's side keys (never sent as such; see
    L{sapproxy.translate.client.openai_chat}): C{_response_format}, an OpenAI client's C{response_format},
    carried to a GPT upstream (Gemini maps it; dropped by the others); C{_max_tokens_default}, set when the
    client gave no limit (L{sapproxy.translate.fit} puts the model's ceiling in and removes it);
    C{_sampling}, an OpenAI client's C{seed} and penalties (Gemini maps them, Claude refuses them).
    """

    model: str
    messages: list[Message]
    max_tokens: int
    system: Union[str, list[TextBlock]]
    tools: list[Tool]
    tool_choice: ToolChoice
    thinking: ThinkingConfig
    temperature: float
    top_p: float
    top_k: int
    stop_sequences: list[str]
    metadata: dict[str, Any]
    stream: bool
    _response_format: dict[str, Any]
    _max_tokens_default: bool
    _sampling: dict[str, Any]


# ---------------------------------------------------------------------------------------------- responses


class Usage(TypedDict):
    """
    Token counts as Anthropic reports them (see L{sapproxy.translate.usage.Usage.to_anthropic}), plus one
    side key: C{output_tokens_details.thinking_tokens}, the part of C{output_tokens} spent thinking, where an
    upstream tells it (Gemini's C{thoughtsTokenCount}, OpenAI's C{reasoning_tokens}); Anthropic has no such
    field, and clients ignore what they do not know.
    """

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: NotRequired[int]
    cache_creation_input_tokens: NotRequired[int]
    output_tokens_details: NotRequired[dict[str, int]]


class Response(TypedDict):
    """A whole (non-streamed) Message."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: str | None
    stop_sequence: str | None
    usage: Usage
    stop_details: NotRequired[dict[str, Any]]


# ---------------------------------------------------------------------------------------------- stream events


class TextDelta(TypedDict):
    type: Literal["text_delta"]
    text: str


class InputJSONDelta(TypedDict):
    type: Literal["input_json_delta"]
    partial_json: str


class ThinkingDelta(TypedDict):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(TypedDict):
    type: Literal["signature_delta"]
    signature: str


BlockDelta = Union[TextDelta, InputJSONDelta, ThinkingDelta, SignatureDelta]


class MessageStartEvent(TypedDict):
    type: Literal["message_start"]
    message: Response


class ContentBlockStartEvent(TypedDict):
    type: Literal["content_block_start"]
    index: int
    content_block: ContentBlock


class ContentBlockDeltaEvent(TypedDict):
    type: Literal["content_block_delta"]
    index: int
    delta: BlockDelta


class ContentBlockStopEvent(TypedDict):
    type: Literal["content_block_stop"]
    index: int


class MessageDeltaBody(TypedDict):
    stop_reason: str
    stop_sequence: str | None
    stop_details: NotRequired[dict[str, Any]]


class MessageDeltaEvent(TypedDict):
    type: Literal["message_delta"]
    delta: MessageDeltaBody
    usage: Usage


class MessageStopEvent(TypedDict):
    type: Literal["message_stop"]


class ErrorBody(TypedDict):
    type: str
    message: str


class ErrorEvent(TypedDict):
    type: Literal["error"]
    error: ErrorBody


StreamEvent = Union[
    MessageStartEvent,
    ContentBlockStartEvent,
    ContentBlockDeltaEvent,
    ContentBlockStopEvent,
    MessageDeltaEvent,
    MessageStopEvent,
    ErrorEvent,
]


# ---------------------------------------------------------------------------------------------- boundaries


def as_request(body: Mapping[str, Any]) -> Request:
    """
    A JSON object taken as an IR request, unchecked: an Anthropic client's body is the IR as it came, and
    every converter that reads it checks what it reads.
    """
    return cast(Request, body)


def as_response(body: Mapping[str, Any]) -> Response:
    """A JSON object taken as an IR message, unchecked (an Anthropic upstream's own response)."""
    return cast(Response, body)


def as_json(value: Request | Response | StreamEvent) -> dict[str, Any]:
    """
    An IR value as the plain JSON object it is at run time: for code that reads it defensively (it may
    hold fields and block types this module does not declare) or hands it on as JSON.
    """
    return cast("dict[str, Any]", value)
