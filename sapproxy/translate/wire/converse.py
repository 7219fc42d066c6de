"""
Bedrock Converse (C{/converse}, C{/converse-stream}) upstreams behind the IR.

Request: L{ir_request_to_converse}.  Response: L{converse_response_to_ir}.  Stream:
L{ConverseToAnthropicStream} fed with events parsed by L{parse_converse_stream_line}.

Mapping notes:

  - C{cache_control} on a system block, message block or tool becomes a C{{"cachePoint": {"type":
    "default"}}} entry right after it (Converse's way to mark a cache breakpoint).
  - thinking <-> C{reasoningContent.reasoningText {text, signature}}; redacted_thinking C{data} <->
    C{reasoningContent.redactedContent} passed through unchanged (both are opaque base64 strings in JSON), so
    a round trip through a client is byte-exact.
  - C{top_k} and C{thinking} go in C{additionalModelRequestFields}; temperature/top_k are dropped when
    thinking is on (as Anthropic requires).  C{tool_choice: none} has no Converse equivalent: the tools are
    left out, unless the history holds tool use (Bedrock then requires C{toolConfig}): then they stay and
    no C{toolChoice} is sent.  C{disable_parallel_tool_use} goes in C{additionalModelRequestFields.tool_choice}
    (see L{_disable_parallel_tool_use}).
  - With stop sequences, C{additionalModelResponseFieldPaths: ["/stop_sequence"]} asks Bedrock which one
    matched, for C{stop_sequence} in the answer.
  - The IR side key C{_response_format} is dropped.
  - Stream: Converse sends C{metadata} (usage) B{after} C{messageStop}; C{message_delta}/C{message_stop} are
    emitted when C{metadata} arrives, or by L{ConverseToAnthropicStream.finish} if it never does.
"""

from __future__ import annotations

import ast
import base64
import json
import re
from typing import Any

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate import ir
from sapproxy.translate.anthropic_stream import AnthropicStreamWriter
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.structured_output import json_schema_instruction
from sapproxy.translate.turns import split_turns
from sapproxy.translate.framing.eventstream import ConverseEventStreamDecoder, anthropic_error_event
from sapproxy.translate.ids import new_message_id
from sapproxy.translate.framing.pipeline import SSEJsonSource
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.jsontext import json_text
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire import NoEmbeddings, NoNativeClient, WireRequest, WireTarget

_DOC_NAME = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")
_CACHE_POINT = {"cachePoint": {"type": "default"}}
_IMAGE_FORMATS = {"image/jpeg": "jpeg", "image/jpg": "jpeg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
_DOC_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/html": "html",
    "text/markdown": "md",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}
_STREAM_EXCEPTIONS = (
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "serviceUnavailableException",
)


# --------------------------------------------------------------------------------------------------------
# IR request -> Converse


def _text_blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if not isinstance(content, list):
        if content is None:
            return []
        raise InvalidRequest("must be a string or a list of text blocks", path)
    out: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest("system blocks must be text blocks", f"{path}[{i}]")
        if block["text"].strip():
            out.append({"text": block["text"]})
        if block.get("cache_control") and out:
            out.append(dict(_CACHE_POINT))
    return out


def _media(block: dict[str, Any], path: str, doc_index: int) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest("source is required", f"{path}.source")
    if source.get("type") == "text" and block.get("type") == "document":
        if not isinstance(source.get("data"), str):
            raise InvalidRequest("text source needs data", f"{path}.source.data")
        return {"text": source["data"]}
    if source.get("type") != "base64":
        raise InvalidRequest("Bedrock Converse accepts only base64 images and documents", f"{path}.source.type")
    media_type, data = source.get("media_type"), source.get("data")
    if not isinstance(media_type, str) or not isinstance(data, str):
        raise InvalidRequest("base64 source needs data and media_type", f"{path}.source")
    if block.get("type") == "image":
        fmt = _IMAGE_FORMATS.get(media_type)
        if fmt is None:
            raise InvalidRequest(f"unsupported image media_type {media_type!r}", f"{path}.source.media_type")
        return {"image": {"format": fmt, "source": {"bytes": data}}}
    fmt = _DOC_FORMATS.get(media_type)
    if fmt is None:
        raise InvalidRequest(f"unsupported document media_type {media_type!r}", f"{path}.source.media_type")
    title = block.get("title")
    # Bedrock allows only alphanumerics, single spaces, hyphens, parentheses and square brackets in names.
    name = " ".join(_DOC_NAME.sub(" ", title).split()) if isinstance(title, str) else ""
    name = name or f"document-{doc_index}"
    return {"document": {"format": fmt, "name": name, "source": {"bytes": data}}}


def _tool_result(block: dict[str, Any], path: str) -> dict[str, Any]:
    tool_id = block.get("tool_use_id")
    if not isinstance(tool_id, str):
        raise InvalidRequest("tool_result needs tool_use_id", f"{path}.tool_use_id")
    content = block.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif isinstance(content, list):
        for i, part in enumerate(content):
            ppath = f"{path}.content[{i}]"
            if not isinstance(part, dict):
                raise InvalidRequest("tool_result content must be blocks", ppath)
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise InvalidRequest("text must be a string", f"{ppath}.text")
                if part["text"]:
                    parts.append({"text": part["text"]})
            elif part.get("type") in ("image", "document"):
                parts.append(_media(part, ppath, i))
            else:
                raise InvalidRequest(f"unsupported tool_result content type {part.get('type')!r}", f"{ppath}.type")
    elif content is not None:
        raise InvalidRequest("tool_result content must be a string or a list of blocks", f"{path}.content")
    if not parts:
        parts.append({"json": {}})
    return {
        "toolResult": {
            "toolUseId": tool_id,
            "content": parts,
            "status": "error" if block.get("is_error") else "success",
        }
    }


def _message_blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or a list of blocks", f"{path}.content")
    out: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        bpath = f"{path}.content[{i}]"
        if not isinstance(block, dict):
            raise InvalidRequest("content blocks must be objects", bpath)
        kind = block.get("type")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise InvalidRequest("text must be a string", f"{bpath}.text")
            if block["text"].strip():
                out.append({"text": block["text"]})
        elif kind in ("image", "document"):
            out.append(_media(block, bpath, i))
        elif kind == "tool_use":
            name, tool_id, args = block.get("name"), block.get("id"), block.get("input", {})
            if not isinstance(name, str) or not name or not isinstance(tool_id, str):
                raise InvalidRequest("tool_use needs an id and a name", bpath)
            if not isinstance(args, dict):
                raise InvalidRequest("tool_use input must be an object", f"{bpath}.input")
            out.append({"toolUse": {"toolUseId": tool_id, "name": name, "input": args}})
        elif kind == "tool_result":
            out.append(_tool_result(block, bpath))
        elif kind == "thinking":
            text, sig = block.get("thinking"), block.get("signature")
            reasoning: dict[str, Any] = {"text": text if isinstance(text, str) else ""}
            if isinstance(sig, str) and sig:
                reasoning["signature"] = sig
            out.append({"reasoningContent": {"reasoningText": reasoning}})
        elif kind == "redacted_thinking":
            if not isinstance(block.get("data"), str):
                raise InvalidRequest("redacted_thinking needs data", f"{bpath}.data")
            out.append({"reasoningContent": {"redactedContent": block["data"]}})
        else:
            raise InvalidRequest(f"content block type {kind!r} is not supported by Bedrock Converse", f"{bpath}.type")
        if block.get("cache_control") and out:
            out.append(dict(_CACHE_POINT))
    return out


def ir_request_to_converse(body: ir.Request) -> dict[str, Any]:
    """An IR (Anthropic Messages) request as a Bedrock Converse body (the model id is in the URL)."""
    parts, conversation = split_turns(body)
    system = [block for part in parts for block in _text_blocks(part.content, part.path)]
    turns: list[dict[str, Any]] = []
    for turn in conversation:
        blocks = _message_blocks(turn.content, turn.path)
        if not blocks or all("cachePoint" in b for b in blocks):
            continue
        if turns and turns[-1]["role"] == turn.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn.role, "content": blocks})
    out: dict[str, Any] = {"messages": turns}
    native = body.get("output_config")
    fmt = native.get("format") if isinstance(native, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        # An Anthropic client's output_config.format, which this path does not enforce: said, not dropped.
        system.append({"text": json_schema_instruction(fmt.get("schema", {}))})
    if system:
        out["system"] = system

    inference: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    if isinstance(body.get("max_tokens"), int):
        inference["maxTokens"] = body["max_tokens"]
    if isinstance(body.get("temperature"), (int, float)) and not thinking_on:
        inference["temperature"] = body["temperature"]
    if isinstance(body.get("top_p"), (int, float)):
        inference["topP"] = body["top_p"]
    if isinstance(body.get("stop_sequences"), list) and body["stop_sequences"]:
        inference["stopSequences"] = [s for s in body["stop_sequences"] if isinstance(s, str)]
        # Which sequence stopped the model comes back only when asked for by path.
        out["additionalModelResponseFieldPaths"] = ["/stop_sequence"]
    if isinstance(body.get("top_k"), int) and not thinking_on:
        extra["top_k"] = body["top_k"]
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive", "disabled"):
        extra["thinking"] = dict(thinking)
        budget = thinking.get("budget_tokens")
        if thinking_on and isinstance(budget, int) and isinstance(inference.get("maxTokens"), int):
            if inference["maxTokens"] <= budget:
                inference["maxTokens"] = budget + max(inference["maxTokens"], 1)
    if inference:
        out["inferenceConfig"] = inference
    if extra:
        out["additionalModelRequestFields"] = extra

    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        specs: list[dict[str, Any]] = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise InvalidRequest("tools must be objects", f"tools[{i}]")
            if tool.get("type") not in (None, "custom"):
                continue
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("tool needs a name", f"tools[{i}].name")
            spec: dict[str, Any] = {"name": name, "inputSchema": {"json": tool.get("input_schema") or {"type": "object"}}}
            if isinstance(tool.get("description"), str) and tool["description"]:
                spec["description"] = tool["description"]
            specs.append({"toolSpec": spec})
            if tool.get("cache_control"):
                specs.append(dict(_CACHE_POINT))
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "none" and not _history_uses_tools(conversation):
            specs = []  # Converse has no "none": the tools are left out, unless the history needs them
        if specs:
            config: dict[str, Any] = {"tools": specs}
            if isinstance(choice, dict):
                kind = choice.get("type")
                if kind == "auto":
                    config["toolChoice"] = {"auto": {}}
                elif kind == "any":
                    config["toolChoice"] = {"any": {}}
                elif kind == "tool":
                    if not isinstance(choice.get("name"), str):
                        raise InvalidRequest("tool_choice of type tool needs a name", "tool_choice.name")
                    config["toolChoice"] = {"tool": {"name": choice["name"]}}
                elif kind != "none":
                    raise InvalidRequest(f"unsupported tool_choice type {kind!r}", "tool_choice.type")
                if choice.get("disable_parallel_tool_use") is True and kind != "none":
                    _disable_parallel_tool_use(out, config)
            out["toolConfig"] = config
    return out


def _disable_parallel_tool_use(out: dict[str, Any], config: dict[str, Any]) -> None:
    """
    Claude's C{disable_parallel_tool_use}, which Converse's C{toolChoice} cannot say, as the model's own
    C{tool_choice} in C{additionalModelRequestFields} (Bedrock merges it into the Anthropic body).  Bedrock
    refuses a C{type} there next to a C{toolConfig.toolChoice} ("The additional field tool_choice/type
    conflicts with the existing field toolConfig.toolChoice...") and a C{tool_choice} without one when no
    C{toolChoice} is sent ("missing field `type`"), so the type goes in only when C{toolChoice} is absent.
    """
    choice: dict[str, Any] = {"disable_parallel_tool_use": True}
    if "toolChoice" not in config:
        choice = {"type": "auto", **choice}
    out["additionalModelRequestFields"] = {**out.get("additionalModelRequestFields", {}), "tool_choice": choice}


def is_claude(model: str) -> bool:
    """
    Whether a Converse model id (Bedrock's C{anthropic.claude-...}, C{us.anthropic.claude-...}, an inference
    profile ARN naming one, or SAP AI Core's C{anthropic--claude-...}) is one of Anthropic's models.
    """
    return "claude" in model.lower() or "anthropic" in model.lower()


def for_model(body: dict[str, Any], model: str) -> dict[str, Any]:
    """
    A Converse body for a model that is not Claude (Amazon Nova, Meta Llama, Mistral, ... on Bedrock): the
    common Converse fields are the same, but C{additionalModelRequestFields} are each model's own, and
    Anthropic's C{thinking}, C{top_k} and C{tool_choice} (C{disable_parallel_tool_use}) would make Bedrock
    answer 400.  C{top_k} survives as Nova's C{inferenceConfig.topK}; thinking and the parallel switch have no
    counterpart and are dropped.
    """
    extra = body.get("additionalModelRequestFields")
    if not model or is_claude(model) or not isinstance(extra, dict):
        return body
    top_k = extra.get("top_k")
    rest = {key: value for key, value in extra.items() if key not in ("top_k", "thinking", "tool_choice")}
    if isinstance(top_k, int) and "nova" in model.lower():
        rest["inferenceConfig"] = {"topK": top_k}
    out = {key: value for key, value in body.items() if key != "additionalModelRequestFields"}
    if rest:
        out["additionalModelRequestFields"] = rest
    return out


def _history_uses_tools(conversation: Any) -> bool:
    """Whether a turn holds a tool_use or tool_result block (then Bedrock requires C{toolConfig})."""
    return any(isinstance(turn.content, list) and any(
        isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in turn.content)
        for turn in conversation)


# --------------------------------------------------------------------------------------------------------
# Converse response -> IR


def _stop(reason: Any) -> str:
    return _STOP_REASONS.get(reason, "end_turn") if isinstance(reason, str) else "end_turn"


def _stop_sequence(fields: Any) -> str | None:
    if not isinstance(fields, dict):
        return None
    value = fields.get("stop_sequence")
    if value is None and isinstance(fields.get("delta"), dict):
        value = fields["delta"].get("stop_sequence")
    return value if isinstance(value, str) else None


def converse_response_to_ir(resp: dict[str, Any], model: str, *, message_id: str | None = None) -> ir.Response:
    """A Converse response as an IR (Anthropic Messages) response naming C{model}."""
    message = ((resp.get("output") or {}).get("message")) or {}
    content: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            if block["text"]:
                content.append({"type": "text", "text": block["text"]})
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            content.append(
                {
                    "type": "tool_use",
                    "id": str(use.get("toolUseId") or ""),
                    "name": str(use.get("name") or ""),
                    "input": use.get("input") if isinstance(use.get("input"), dict) else {},
                }
            )
        elif isinstance(block.get("reasoningContent"), dict):
            reasoning = block["reasoningContent"]
            if isinstance(reasoning.get("reasoningText"), dict):
                text = reasoning["reasoningText"]
                content.append(
                    {
                        "type": "thinking",
                        "thinking": str(text.get("text") or ""),
                        "signature": str(text.get("signature") or ""),
                    }
                )
            elif reasoning.get("redactedContent") is not None:
                content.append({"type": "redacted_thinking", "data": _opaque(reasoning["redactedContent"])})
    reason = _stop(resp.get("stopReason"))
    stop_sequence = _stop_sequence(resp.get("additionalModelResponseFields"))
    if reason == "end_turn" and stop_sequence:
        reason = "stop_sequence"
    usage = resp.get("usage")
    out: dict[str, Any] = {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence,
        "usage": Usage.from_converse(usage if isinstance(usage, dict) else {}).to_anthropic(),
    }
    return ir.as_response(out)


def _opaque(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


# --------------------------------------------------------------------------------------------------------
# Stream


class ConverseStreamParseError(ValueError):
    """A converse-stream C{data:} line that is neither JSON nor a Python dict literal."""


def _bytes_to_base64(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _bytes_to_base64(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_bytes_to_base64(v) for v in value]
    return value


#: Python literal tokens that differ from JSON: quoted strings (either quote) and the three constants.
_PY_TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\b(?:True|False|None)\b""", re.S)
_PY_CONSTANTS = {"True": "true", "False": "false", "None": "null"}


def _py_token_as_json(match: re.Match[str]) -> str:
    token = match.group(0)
    constant = _PY_CONSTANTS.get(token)
    if constant is not None:
        return constant
    body = token[1:-1]
    if "\\" not in body:
        if token[0] == '"':
            return token  # a double-quoted repr holds no '"' and, without escapes, is already JSON
        if '"' not in body:
            return '"' + body + '"'  # repr never leaves control characters raw
        return json.dumps(body, ensure_ascii=False)
    if "\\" in body:
        # Python escapes (\', \xNN, \uNNNN, \n, ...) -> the characters; non-Latin-1 characters survive as
        # \uNNNN escapes through the round trip.
        body = body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return json.dumps(body, ensure_ascii=False)


def _python_literal_fast(text: str) -> Any:
    """The common case of a Python dict repr (str/int/float/bool/None values) rewritten to JSON with one
    regex pass, about ten times faster than C{ast.literal_eval}.  Raises C{ValueError} (JSON's) for anything
    it cannot handle, and the caller falls back to C{ast.literal_eval}."""
    return json.loads(_PY_TOKEN.sub(_py_token_as_json, text))


def parse_converse_stream_line(data: str) -> dict[str, Any]:
    """
    One converse-stream event from a C{data:} line: JSON, or (as SAP's gateway forwards it) a Python dict
    literal such as C{{'messageStart': {'role': 'assistant'}}}.  Python literals are rewritten to JSON by a
    tokenizing fast path, else parsed with C{ast.literal_eval} (literals only, never code); C{bytes} values (boto3's redactedContent) become base64 strings as in JSON.
    Raises L{ConverseStreamParseError} for anything else.
    """
    text = data.strip()
    value: Any
    try:
        if text.startswith("{'"):
            raise ValueError("a Python literal")  # skip the JSON attempt that is bound to fail
        value = json.loads(text)
    except (ValueError, RecursionError):
        try:
            value = _python_literal_fast(text)
        except (ValueError, UnicodeError, RecursionError):
            try:
                value = _bytes_to_base64(ast.literal_eval(text))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
                raise ConverseStreamParseError(
                    f"converse-stream line is neither JSON nor a Python literal: {text[:80]!r}"
                ) from e
    if not isinstance(value, dict):
        raise ConverseStreamParseError(f"converse-stream line is not an object: {text[:80]!r}")
    return value


class ConverseToAnthropicStream:
    """
    ConverseStream events as Anthropic stream events (see the module docstring), written by an
    L{AnthropicStreamWriter}.

    Converse numbers its blocks itself (C{contentBlockIndex}) and Bedrock sends them one after another.
    Should an upstream interleave them, the writer still keeps one block open at a time: opening a block
    closes the one before, a later text or reasoning delta for the closed block opens a new block, and a
    later tool input fragment goes to its tool_use block's index (as for GPT's interleaved tool calls).
    """

    def __init__(self, model: str, *, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Usage | None = None
        self._writer = AnthropicStreamWriter()
        self._blocks: dict[int, tuple[int, str]] = {}  # upstream index -> (our index, block type)
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._stopped = False

    def _start(self, out: list[ir.StreamEvent]) -> None:
        if not self._writer.started:
            self._writer.start(out, self.message_id, self.model)

    def _open(self, out: list[ir.StreamEvent], upstream: int, block: ir.ContentBlock) -> int:
        index = self._writer.open(out, block)
        self._blocks[upstream] = (index, block["type"])
        return index

    def _is_open(self, entry: tuple[int, str] | None) -> bool:
        return entry is not None and self._writer.open_type is not None and self._writer.open_index == entry[0]

    def _close(self, out: list[ir.StreamEvent], upstream: int) -> None:
        if self._is_open(self._blocks.pop(upstream, None)):
            self._writer.close(out)

    def _end(self, out: list[ir.StreamEvent]) -> None:
        self._blocks.clear()
        self._writer.finish(
            out, self._stop_reason or "end_turn", (self.usage or Usage()).to_anthropic(), stop_sequence=self._stop_sequence
        )

    def _delta(self, out: list[ir.StreamEvent], upstream: int, delta: dict[str, Any]) -> None:
        writer = self._writer
        entry = self._blocks.get(upstream)
        live = self._is_open(entry)
        if "text" in delta and isinstance(delta["text"], str):
            if not live or entry is None or entry[1] != "text":
                self._close(out, upstream)
                self._open(out, upstream, {"type": "text", "text": ""})
            if delta["text"]:
                writer.text(out, delta["text"])
            return
        use = delta.get("toolUse")
        if isinstance(use, dict):
            if entry is None or entry[1] != "tool_use":
                self._close(out, upstream)
                index = self._open(out, upstream, {"type": "tool_use", "id": "", "name": "", "input": {}})
            else:
                index = entry[0]
            fragment = use.get("input")
            if isinstance(fragment, str) and fragment:
                writer.tool_input_at(out, index, fragment)
            return
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if reasoning.get("redactedContent") is not None:
                self._close(out, upstream)
                self._open(out, upstream, {"type": "redacted_thinking", "data": _opaque(reasoning["redactedContent"])})
                return
            if not live or entry is None or entry[1] != "thinking":
                self._close(out, upstream)
                self._open(out, upstream, {"type": "thinking", "thinking": "", "signature": ""})
            if isinstance(reasoning.get("text"), str) and reasoning["text"]:
                writer.delta(out, {"type": "thinking_delta", "thinking": reasoning["text"]})
            if isinstance(reasoning.get("signature"), str) and reasoning["signature"]:
                writer.delta(out, {"type": "signature_delta", "signature": reasoning["signature"]})

    def feed(self, event: dict[str, Any]) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._writer.ended:
            return out
        if event.get("type") == "error":
            # An exception or error frame of Bedrock's event stream, already an Anthropic error event.
            self._start(out)
            self._writer.fail(out, event)  # type: ignore[arg-type]
            return out
        for name in _STREAM_EXCEPTIONS:
            if name in event:
                detail = event[name]
                message = detail.get("message") if isinstance(detail, dict) else None
                self._start(out)
                self._writer.fail(out, anthropic_error_event(name, str(message or name)))
                return out
        self._start(out)
        if "contentBlockStart" in event:
            start = event["contentBlockStart"] or {}
            upstream = int(start.get("contentBlockIndex") or 0)
            use = (start.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                if upstream in self._blocks:
                    self._close(out, upstream)
                self._open(
                    out,
                    upstream,
                    {"type": "tool_use", "id": str(use.get("toolUseId") or ""), "name": str(use.get("name") or ""), "input": {}},
                )
        elif "contentBlockDelta" in event:
            body = event["contentBlockDelta"] or {}
            delta = body.get("delta")
            if isinstance(delta, dict):
                self._delta(out, int(body.get("contentBlockIndex") or 0), delta)
        elif "contentBlockStop" in event:
            self._close(out, int((event["contentBlockStop"] or {}).get("contentBlockIndex") or 0))
        elif "messageStop" in event:
            stop = event["messageStop"] or {}
            self._stop_reason = _stop(stop.get("stopReason"))
            self._stop_sequence = _stop_sequence(stop.get("additionalModelResponseFields"))
            if self._stop_reason == "end_turn" and self._stop_sequence:
                self._stop_reason = "stop_sequence"
            self._stopped = True
            self._blocks.clear()
            self._writer.close(out)
        elif "metadata" in event:
            usage = (event["metadata"] or {}).get("usage")
            if isinstance(usage, dict):
                found = Usage.from_converse(usage)
                self.usage = found if self.usage is None else self.usage.merged(found)
            if self._stopped:
                self._end(out)
        return out

    def finish(self) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._writer.ended:
            return out
        self._start(out)
        self._end(out)
        return out


@implementer(IWireFormat)
class ConverseWire(NoNativeClient, NoEmbeddings):
    """
    Claude (or any Bedrock model) through Bedrock's C{Converse} API (L{sapproxy.interfaces.IWireFormat}).
    """

    name = "converse"
    fit_kind = "converse"
    input_tokens_at_end = False
    dialect_of = "converse"

    def request(self, ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        return WireRequest("converse", json_text(for_model(ir_request_to_converse(ir), target.model)), stream)

    def stream_source(self, content_type: str) -> Any:
        """
        Bedrock's own C{converse-stream} answers in AWS event-stream frames, SAP AI Core's in SSE lines.
        """
        if "amazon.eventstream" in content_type:
            return ConverseEventStreamDecoder()
        return SSEJsonSource(parse_converse_stream_line)

    def stream_to_ir(self, model: str, message_id: str) -> list[Any]:
        return [ConverseToAnthropicStream(model, message_id=message_id)]

    def response_to_ir(self, response: dict[str, Any], model: str) -> IRResponse:
        return converse_response_to_ir(response, model)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return Usage.from_converse(response.get("usage") or {})


WIRE_FORMAT = ConverseWire()
