"""
Anthropic Messages API clients (Claude Code above all) in front of Bedrock's C{invoke} and
C{invoke-with-response-stream}.

Bedrock's Anthropic body is the Messages API with a few differences, so this module sanitises rather than
translates:

  - C{model} and C{stream} live in the URL, not the body; C{anthropic_version} must be
    C{bedrock-2023-05-31}; betas move from the C{anthropic-beta} header into C{anthropic_beta: [...]}.
  - Bedrock rejects top-level keys it does not know (C{metadata}, C{context_management} and C{output_config}
    without their betas,
    C{service_tier}, C{container}, C{mcp_servers}, ...), so only L{ALLOWED_TOP_LEVEL} is kept.
  - Bedrock does not run Anthropic's server tools (web search, web fetch, code execution, memory, tool
    search, MCP toolsets): those tool definitions are dropped.  Client tools (no C{type} or
    C{type: custom}) and the Anthropic-defined client tools Bedrock documents (C{bash_*},
    C{text_editor_*}, C{computer_*}) are kept with their own keys only.
  - Betas are filtered through L{BEDROCK_BETAS}; unknown betas make Bedrock answer 400.
  - A JSON schema for the answer (an OpenAI client's strict C{json_schema}, an Anthropic client's
    C{output_config.format}) and tools' C{strict} are enforced by Bedrock for the Claude models
    L{sapproxy.translate.structured_output} names: they go as C{output_config.format} and tool C{strict};
    the others get the schema as a system instruction (L{_structured_output}).

Content is never rewritten beyond dropping empty text blocks: thinking and redacted_thinking blocks and
their signatures pass byte for byte, C{cache_control} is kept wherever it appears.

Responses are already Anthropic-shaped.  L{bedrock_invoke_response} and L{BedrockStreamNormaliser} only
put the client's model name in and drop Bedrock's C{amazon-bedrock-invocationMetrics} (added to the
C{message_stop} event of streams, and sometimes to non-stream bodies): it is not part of the Messages API
and its token counts duplicate the C{usage} the events already carry.  The normaliser reads it for
L{Usage} where the events carried none.
"""

from __future__ import annotations

import copy
from typing import Any

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate.framing.eventstream import EventStreamDecoder
from sapproxy.translate.framing.pipeline import SSEJsonSource
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.jsontext import json_text
from sapproxy.translate import ir
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire import NoEmbeddings, WireRequest, WireTarget
from sapproxy.translate.model_limits import CONTEXT_MANAGEMENT_BETA, EFFORT_BETA, TOOL_EXAMPLES_BETA, bedrock_model_betas
from sapproxy.translate.structured_output import closed_schema, json_schema_instruction, takes_structured_outputs

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"

#: The top-level request keys Bedrock's Anthropic Messages body accepts.
ALLOWED_TOP_LEVEL = frozenset(
    {
        "anthropic_version",
        "anthropic_beta",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
    }
)

#: Betas Bedrock accepts in C{anthropic_beta} (AWS Bedrock user guide, "Anthropic Claude Messages API",
#: beta headers table), for every Claude model.  The model-specific ones (C{context-management-2025-06-27},
#: C{effort-2025-11-24}, C{tool-examples-2025-10-29}) pass with their fields (C{context_management},
#: C{output_config.effort}, C{tools[].input_examples}) where the model takes them
#: (L{sapproxy.translate.model_limits.bedrock_model_betas}).  Left out on purpose: C{prompt-caching-*} (GA,
#: no header needed), and Anthropic-only betas
#: Claude Code sends (C{claude-code-20250219}, C{oauth-2025-04-20}, C{web-search-*}, C{files-api-*},
#: C{mcp-client-*}, C{code-execution-*}).
BEDROCK_BETAS = frozenset(
    {
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
    }
)

#: Anthropic-defined client tools Bedrock runs (by C{type} prefix), and the keys each may carry.  The
#: computer tool's display keys are required by that tool; the text editor's optional C{max_characters} is
#: dropped, as Bedrock's schema check refuses tool keys beyond name/description/input_schema/cache_control/type.
_TYPED_TOOL_PREFIXES = ("bash_", "text_editor_", "computer_")
_TYPED_TOOL_KEYS = frozenset(
    {
        "type",
        "name",
        "cache_control",
        "display_width_px",
        "display_height_px",
        "display_number",
        "enable_zoom",
    }
)
_CLIENT_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control"})
_TOOL_CHOICE_KEYS = frozenset({"type", "name", "disable_parallel_tool_use"})

#: Thinking modes that forbid temperature / top_k (and top_p below 0.95).
_THINKING_ON = ("enabled", "adaptive")
_BEDROCK_EXTRA = "amazon-bedrock-invocationMetrics"


def parse_betas(header: str | None) -> list[str]:
    """The betas named in an C{anthropic-beta} header (comma separated, possibly repeated), in order."""
    if not header:
        return []
    seen: list[str] = []
    for item in header.split(","):
        name = item.strip()
        if name and name not in seen:
            seen.append(name)
    return seen


def bedrock_betas(header: str | None) -> list[str]:
    """The betas of an C{anthropic-beta} header that Bedrock accepts (see L{BEDROCK_BETAS})."""
    return [name for name in parse_betas(header) if name in BEDROCK_BETAS]


def _is_server_tool(tool: dict[str, Any]) -> bool:
    kind = tool.get("type")
    if kind is None or kind == "custom":
        return False
    return not (isinstance(kind, str) and kind.startswith(_TYPED_TOOL_PREFIXES))


def _clean_tool(tool: dict[str, Any], client_keys: frozenset[str] | set[str] = _CLIENT_TOOL_KEYS) -> dict[str, Any]:
    kind = tool.get("type")
    keys = client_keys if kind is None or kind == "custom" else _TYPED_TOOL_KEYS
    return {key: value for key, value in tool.items() if key in keys}


def _system_blocks(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    if isinstance(system, list):
        return [block for block in system if isinstance(block, dict)]
    return []


#: Content blocks produced by Anthropic's server tools (and MCP connector): meaningless to Bedrock, which
#: runs none of them, and refused there; dropped from the history along with the server tools.
_SERVER_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)


def _is_empty_text(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "text":
        return False
    text = block.get("text")
    return not isinstance(text, str) or not text.strip()


def _clean_content(content: Any) -> Any:
    """Drop empty text blocks; an empty block's C{cache_control} moves to the block before it."""
    if isinstance(content, str) or not isinstance(content, list):
        return content
    out: list[Any] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") in _SERVER_BLOCKS:
            continue
        if _is_empty_text(block):
            if block.get("cache_control") is not None and out and isinstance(out[-1], dict):
                if "cache_control" not in out[-1] and out[-1].get("type") not in ("thinking", "redacted_thinking"):
                    out[-1] = {**out[-1], "cache_control": block["cache_control"]}
            continue
        if isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list):
                cleaned = [part for part in inner if not _is_empty_text(part)]
                if len(cleaned) != len(inner):
                    block = {**block, "content": cleaned}
        out.append(block)
    return out


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _content_is_empty(content: Any) -> bool:
    if isinstance(content, str):
        return not content.strip()
    return not content


def bedrock_invoke_body(body: ir.Request, *, anthropic_beta: str | None, model: str | None = None) -> dict[str, Any]:
    """
    Turn a client's Messages API request into a body for Bedrock C{invoke}/C{invoke-with-response-stream}.

    Never mutates C{body}.  See the module docstring for the rules; in short: whitelist the top-level keys,
    set C{anthropic_version}, move accepted betas into the body, drop server tools and unknown tool keys,
    fold mid-conversation C{system} turns into C{system}, drop empty text blocks (and turns left empty), merge
    consecutive turns of one role (Bedrock refuses them),
    keep C{max_tokens} above the thinking budget, drop sampling parameters thinking forbids.
    """
    body = copy.deepcopy(body)
    out: dict[str, Any] = {key: value for key, value in body.items() if key in ALLOWED_TOP_LEVEL}
    out["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION

    accepted = BEDROCK_BETAS | bedrock_model_betas(model)
    betas = [name for name in parse_betas(anthropic_beta) if name in accepted]
    existing = out.get("anthropic_beta")
    if isinstance(existing, list):
        betas = [b for b in existing if isinstance(b, str) and b in accepted] + [
            b for b in betas if b not in existing
        ]
    if betas:
        out["anthropic_beta"] = betas
    else:
        out.pop("anthropic_beta", None)
    # The fields of the model-specific betas, where the beta goes too (model_limits.bedrock_model_betas).
    raw = ir.as_json(body)
    if CONTEXT_MANAGEMENT_BETA in betas and isinstance(raw.get("context_management"), dict):
        out["context_management"] = raw["context_management"]
    output_config = raw.get("output_config")
    if EFFORT_BETA in betas and isinstance(output_config, dict) and "effort" in output_config:
        out["output_config"] = {"effort": output_config["effort"]}
    structured = takes_structured_outputs(model)
    tool_keys = _CLIENT_TOOL_KEYS | ({"input_examples"} if TOOL_EXAMPLES_BETA in betas else set()) \
        | ({"strict"} if structured else set())

    # System prompt, plus any role:system turns in the conversation.
    system = out.get("system")
    folded: list[dict[str, Any]] = []
    messages: list[Any] = []
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "system":
            folded.extend(_system_blocks(message.get("content")))
            continue
        if isinstance(message, dict):
            content = _clean_content(message.get("content"))
            if _content_is_empty(content):
                continue
            message = {**message, "content": content}
            previous = messages[-1] if messages else None
            if isinstance(previous, dict) and previous.get("role") == message.get("role"):
                # Bedrock refuses two turns of one role in a row (the Anthropic API merges them): merge here,
                # as folding system turns and dropping empty ones can create such pairs.
                messages[-1] = {**previous, "content": _as_blocks(previous.get("content")) + _as_blocks(content)}
                continue
        messages.append(message)
    out["messages"] = messages
    if folded:
        blocks = _system_blocks(system) + folded
        out["system"] = [block for block in blocks if not _is_empty_text(block)]
    elif isinstance(system, list):
        out["system"] = [block for block in system if not _is_empty_text(block)]
    if "system" in out and _content_is_empty(out["system"]):
        del out["system"]
    _structured_output(out, raw, structured)

    # Tools.
    tools = out.get("tools")
    if isinstance(tools, list):
        kept = [_clean_tool(tool, tool_keys) for tool in tools if isinstance(tool, dict) and not _is_server_tool(tool)]
        if kept:
            out["tools"] = kept
        else:
            del out["tools"]
            out.pop("tool_choice", None)
    choice = out.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {key: value for key, value in choice.items() if key in _TOOL_CHOICE_KEYS}
        if choice.get("type") == "tool" and isinstance(out.get("tools"), list):
            names = [tool.get("name") for tool in out["tools"] if isinstance(tool, dict)]
            if choice.get("name") not in names:
                # The forced tool was a server tool we dropped: let the model choose.
                out["tool_choice"] = {"type": "auto"}

    # Thinking.
    thinking = out.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in _THINKING_ON:
        out.pop("temperature", None)
        out.pop("top_k", None)
        top_p = out.get("top_p")
        if isinstance(top_p, (int, float)) and top_p < 0.95:
            out.pop("top_p")
        budget = thinking.get("budget_tokens")
        max_tokens = out.get("max_tokens")
        if isinstance(budget, int) and isinstance(max_tokens, int) and max_tokens <= budget:
            # Anthropic requires max_tokens > budget_tokens; give the answer the room the client asked for.
            out["max_tokens"] = budget + max(max_tokens, 1)
    elif isinstance(thinking, dict) and thinking.get("type") == "disabled":
        pass
    return out


def _structured_output(out: dict[str, Any], raw: dict[str, Any], structured: bool) -> None:
    """
    The answer's JSON schema as Claude C{structured} (L{takes_structured_outputs}) or not takes it: an
    OpenAI client's strict C{json_schema} (which came as a system instruction, see
    L{sapproxy.translate.client.openai_chat}) and an Anthropic client's C{output_config.format} (or the
    deprecated C{output_format}) become C{output_config.format}, the instruction going; or, where the model
    cannot enforce one, the Anthropic client's schema becomes that instruction.
    """
    response_format = raw.get("_response_format")
    spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
    config = raw.get("output_config")
    native = config.get("format") if isinstance(config, dict) else None
    native = native if isinstance(native, dict) else raw.get("output_format")
    if isinstance(native, dict) and native.get("type") == "json_schema":
        schema = native.get("schema", {})
    elif isinstance(spec, dict) and spec.get("strict") is True and isinstance(response_format, dict) \
            and response_format.get("type") == "json_schema":
        schema = spec.get("schema", {})
        if not structured:
            return  # the client converter already put the instruction in
        instruction = json_schema_instruction(schema)
        system = out.get("system")
        if isinstance(system, list):
            kept = [b for b in system if not (isinstance(b, dict) and b.get("text") == instruction)]
            if kept:
                out["system"] = kept
            else:
                del out["system"]
    else:
        return
    if structured:
        out["output_config"] = {**out.get("output_config", {}), "format": {"type": "json_schema",
                                                                         "schema": closed_schema(schema)}}
        return
    text = {"type": "text", "text": json_schema_instruction(schema)}
    system = out.get("system")
    if isinstance(system, str) and system:
        out["system"] = [{"type": "text", "text": system}, text]
    else:
        out["system"] = (system if isinstance(system, list) else []) + [text]


def bedrock_invoke_response(resp: dict[str, Any], model: str) -> ir.Response:
    """Bedrock's non-stream invoke body as the client's Messages response: the client's model name,
    Bedrock's invocation metrics dropped, everything else kept."""
    out = {key: value for key, value in resp.items() if key != _BEDROCK_EXTRA}
    out["model"] = model
    return ir.as_response(out)


class BedrockStreamNormaliser:
    """
    Events decoded from C{invoke-with-response-stream} (already Anthropic stream events) made
    indistinguishable from Anthropic's own: C{message_start} names the client's model, C{message_stop} loses
    C{amazon-bedrock-invocationMetrics}.  Keeps L{usage} current.

    The events are the upstream's own, passed on as JSON (every other field and block type kept), hence
    plain dicts rather than L{ir.StreamEvent}s.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: Usage | None = None

    def _note(self, usage: Any) -> None:
        if isinstance(usage, dict):
            found = Usage.from_anthropic(usage)
            self.usage = found if self.usage is None else self.usage.merged(found)

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = {**event["message"], "model": self.model}
            self._note(message.get("usage"))
            return [{**event, "message": message}]
        if kind == "message_delta":
            self._note(event.get("usage"))
            return [event]
        if kind == "message_stop" and _BEDROCK_EXTRA in event:
            metrics = event.get(_BEDROCK_EXTRA)
            if self.usage is None and isinstance(metrics, dict):
                self.usage = Usage(
                    prompt_tokens=_count(metrics.get("inputTokenCount")),
                    completion_tokens=_count(metrics.get("outputTokenCount")),
                )
            return [{key: value for key, value in event.items() if key != _BEDROCK_EXTRA}]
        return [event]

    def finish(self) -> list[dict[str, Any]]:
        return []


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@implementer(IWireFormat)
class BedrockInvokeWire(NoEmbeddings):
    """
    Claude through Bedrock's C{InvokeModel} (L{sapproxy.interfaces.IWireFormat}): the body is the Messages
    API's, sanitised; streams come as AWS event-stream frames (or SSE) carrying Anthropic's own events.
    """

    name = "bedrock_invoke"
    fit_kind = "invoke"
    input_tokens_at_end = False
    dialect_of = "bedrock_invoke"

    def request(self, ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        body = bedrock_invoke_body(ir, anthropic_beta=target.anthropic_beta, model=target.model)
        return WireRequest("invoke", json_text(body), stream)

    def passthrough(self, call: Any, target: WireTarget) -> WireRequest:
        return self.request(call.body, target, call.stream)

    def stream_source(self, content_type: str) -> Any:
        return EventStreamDecoder() if "amazon.eventstream" in content_type else SSEJsonSource()

    def stream_to_ir(self, model: str, message_id: str) -> list[Any]:
        return [BedrockStreamNormaliser(model)]

    def passthrough_stream(self, call: Any) -> list[Any]:
        return [BedrockStreamNormaliser(call.model)]

    def response_to_ir(self, response: dict[str, Any], model: str) -> IRResponse:
        return bedrock_invoke_response(response, model)

    def passthrough_response(self, response: dict[str, Any], call: Any) -> dict[str, Any]:
        return ir.as_json(bedrock_invoke_response(response, call.model))

    def usage(self, response: dict[str, Any]) -> Usage | None:
        usage = response.get("usage")
        return Usage.from_anthropic(usage) if isinstance(usage, dict) else None


WIRE_FORMAT = BedrockInvokeWire()
