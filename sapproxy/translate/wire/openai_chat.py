"""
A GPT (Azure OpenAI Chat Completions) upstream behind an Anthropic Messages client.

Three converters:

  - L{ir_request_to_chat}: an Anthropic Messages request (the IR) to an OpenAI chat request;
  - L{chat_response_to_ir}: a C{chat.completion} to an Anthropic Message;
  - L{OpenAIToAnthropicStream}: C{chat.completion.chunk}s to Anthropic stream events.

Decisions a reader might not guess:

  - Tool call arguments that are not a JSON object (GPT cut off by C{length}, or a broken model) become
    C{input: {}} in a non-streamed response: Anthropic's C{input} must be an object, and an empty one makes
    the client's own schema check fail, which a coding agent reports back to the model, which retries.
    In a stream the fragments are relayed as they came, exactly as Anthropic itself does when cut off.
  - Thinking blocks are dropped on the way to GPT: it can neither read nor verify them.
  - C{reasoning_content} (or C{reasoning}) from an OpenAI-compatible upstream becomes a thinking block with
    an empty signature.
  - C{is_error} tool results are sent as their content prefixed with C{"Error: "}: OpenAI has no flag.
  - Images inside tool results cannot go into a C{tool} message, so they follow in the user message.
  - C{role: "system"} messages inside C{messages} stay where they are, as system/developer messages.
  - The IR side key C{_response_format} (see L{sapproxy.translate.client.openai_chat}) is restored as
    C{response_format}.
"""

from __future__ import annotations

import json
from typing import Any

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate import ir
from sapproxy.translate.anthropic_stream import AnthropicStreamWriter
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.jsontext import compact_json, json_text
from sapproxy.translate.ids import message_id_from_chat_id, new_call_id
from sapproxy.translate.framing.pipeline import SSEJsonSource
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.translate.wire.openai_passthrough import OpenAIPassthrough, openai_response

__all__ = [
    "ir_request_to_chat",
    "chat_response_to_ir",
    "OpenAIToAnthropicStream",
    "anthropic_stop_reason",
    "reasoning_effort_for_budget",
]

#: OpenAI accepts at most this many stop sequences.
MAX_STOP_SEQUENCES = 4

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}



def anthropic_stop_reason(finish_reason: str | None) -> str:
    """OpenAI C{finish_reason} -> Anthropic C{stop_reason}; unknown and missing reasons are C{end_turn}."""
    if finish_reason is None:
        return "end_turn"
    return _STOP.get(finish_reason, "end_turn")


def reasoning_effort_for_budget(budget: Any) -> str:
    """Anthropic C{thinking.budget_tokens} -> OpenAI C{reasoning_effort}: <4096 low, <16384 medium, else high."""
    if not isinstance(budget, int) or budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


# --------------------------------------------------------------------------------------------------------
# Requests


def _str(container: dict[str, Any], key: str, path: str, default: str = "") -> str:
    """C{container[key]} when it is a string, C{default} when absent or null; InvalidRequest otherwise."""
    value = container.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidRequest(f"{path}.{key} must be a string", f"{path}.{key}")
    return value


def _image_part(block: dict[str, Any], path: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{path}.source is required", f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = _str(source, "media_type", f"{path}.source", "image/png")
        url = f"data:{media_type};base64,{_str(source, 'data', f'{path}.source')}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest(f"{path}.source.type {kind!r} is not supported", f"{path}.source.type")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict[str, Any], path: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media_type = _str(source, "media_type", f"{path}.source", "application/pdf")
        return {
            "type": "file",
            "file": {
                "filename": _str(block, "title", path) or "document.pdf",
                "file_data": f"data:{media_type};base64,{_str(source, 'data', f'{path}.source')}",
            },
        }
    if kind == "text" and isinstance(source, dict):
        return {"type": "text", "text": _str(source, "data", f"{path}.source")}
    raise InvalidRequest(f"{path}.source.type {kind!r} is not supported", f"{path}.source.type")


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise InvalidRequest(f"system[{i}] must be a text block", f"system[{i}].type")
            texts.append(block["text"])
        return "\n\n".join(texts)
    raise InvalidRequest("system must be a string or an array of text blocks", "system")


def _tool_result_text(block: dict[str, Any], path: str, images: list[dict[str, Any]]) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            ppath = f"{path}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_str(part, "text", ppath))  # type: ignore[arg-type]
            elif kind == "image":
                images.append(_image_part(part, ppath))  # type: ignore[arg-type]
            elif kind == "document":
                images.append(_document_part(part, ppath))  # type: ignore[arg-type]
            else:
                raise InvalidRequest(f"{ppath}.type {kind!r} is not supported", f"{ppath}.type")
        text = "\n".join(texts)
    else:
        raise InvalidRequest(f"{path}.content must be a string or an array of blocks", f"{path}.content")
    if block.get("is_error") is True:
        text = "Error: " + text
    return text


def _user_messages(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{path} must be a string or an array of blocks", path)
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        bpath = f"{path}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _str(block, "text", bpath)})  # type: ignore[arg-type]
        elif kind == "image":
            parts.append(_image_part(block, bpath))  # type: ignore[arg-type]
        elif kind == "document":
            parts.append(_document_part(block, bpath))  # type: ignore[arg-type]
        elif kind == "tool_result":
            tool_use_id = block.get("tool_use_id")  # type: ignore[union-attr]
            if not isinstance(tool_use_id, str):
                raise InvalidRequest(f"{bpath}.tool_use_id is required", f"{bpath}.tool_use_id")
            text = _tool_result_text(block, bpath, parts)  # type: ignore[arg-type]
            tool_messages.append({"role": "tool", "tool_call_id": tool_use_id, "content": text})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise InvalidRequest(f"{bpath}.type {kind!r} is not supported", f"{bpath}.type")
    if parts:
        if all(p["type"] == "text" for p in parts):
            tool_messages.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            tool_messages.append({"role": "user", "content": parts})
    return tool_messages


def _assistant_message(content: Any, path: str) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(f"{path} must be a string or an array of blocks", path)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        bpath = f"{path}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_str(block, "text", bpath))  # type: ignore[arg-type]
        elif kind == "tool_use":
            assert isinstance(block, dict)
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(f"{bpath} needs an id and a name", bpath)
            if not isinstance(block.get("input", {}), dict):
                raise InvalidRequest(f"{bpath}.input must be an object", f"{bpath}.input")
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": compact_json(block.get("input") or {})},
                }
            )
        elif kind in ("thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result"):
            continue  # GPT can take none of these
        elif isinstance(kind, str) and kind.endswith("_tool_result"):
            continue
        else:
            raise InvalidRequest(f"{bpath}.type {kind!r} is not supported", f"{bpath}.type")
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def ir_request_to_chat(body: ir.Request, *, reasoning_model: bool) -> dict[str, Any]:
    """
    An Anthropic Messages request body as an OpenAI Chat Completions request body.

    @param reasoning_model: the deployment is an o-series or GPT-5 reasoning model: the system prompt is
        a C{developer} message, C{max_completion_tokens} replaces C{max_tokens}, sampling parameters and
        stop sequences (which those models refuse) are dropped, and thinking maps to C{reasoning_effort}.
    @raise InvalidRequest: for blocks or tools GPT cannot take, naming their path.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    messages_in = body.get("messages")
    if not isinstance(messages_in, list):
        raise InvalidRequest("messages must be an array", "messages")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append({"role": "developer" if reasoning_model else "system", "content": text})
    for i, message in enumerate(messages_in):
        path = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{path} must be an object", path)
        role = message.get("role")
        if role == "user":
            messages.extend(_user_messages(message.get("content"), f"{path}.content"))
        elif role == "assistant":
            converted = _assistant_message(message.get("content"), f"{path}.content")
            if converted is not None:
                messages.append(converted)
        elif role == "system":
            # Claude Code (and OpenAI clients through the IR) put system turns inside the conversation;
            # GPT takes them where they stand, as system (or, for reasoning models, developer) messages.
            text = _system_text(message.get("content"))
            if text:
                messages.append({"role": "developer" if reasoning_model else "system", "content": text})
        else:
            raise InvalidRequest(f"{path}.role {role!r} is not supported", f"{path}.role")

    out: dict[str, Any] = {}
    if "model" in body:
        out["model"] = body["model"]
    out["messages"] = messages

    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidRequest("tools must be an array", "tools")
        functions = []
        for i, tool in enumerate(tools):
            path = f"tools[{i}]"
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise InvalidRequest(f"{path}.name is required", f"{path}.name")
            kind = tool.get("type")
            if kind not in (None, "custom") or not isinstance(tool.get("input_schema"), dict):
                raise InvalidRequest(
                    f"{path}: the server tool {kind!r} is not available for this model", f"{path}.type"
                )
            function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            if isinstance(tool.get("strict"), bool):
                function["strict"] = tool["strict"]
            functions.append({"type": "function", "function": function})
        out["tools"] = functions
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind == "auto":
                out["tool_choice"] = "auto"
            elif kind == "any":
                out["tool_choice"] = "required"
            elif kind == "none":
                out["tool_choice"] = "none"
            elif kind == "tool" and isinstance(choice.get("name"), str):
                out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
            else:
                raise InvalidRequest(f"tool_choice.type {kind!r} is not supported", "tool_choice.type")
            if choice.get("disable_parallel_tool_use") is True and kind != "none":
                out["parallel_tool_calls"] = False
        elif choice is not None:
            raise InvalidRequest("tool_choice must be an object", "tool_choice")

    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        out["max_completion_tokens" if reasoning_model else "max_tokens"] = max_tokens
    if not reasoning_model:
        for key in ("temperature", "top_p"):
            if body.get(key) is not None:
                out[key] = body[key]
        stops = body.get("stop_sequences")
        if stops is not None:
            if not isinstance(stops, list) or not all(isinstance(x, str) for x in stops):
                raise InvalidRequest("stop_sequences must be an array of strings", "stop_sequences")
            if len(stops) > MAX_STOP_SEQUENCES:
                raise InvalidRequest(f"stop_sequences: this model takes at most {MAX_STOP_SEQUENCES} stop "
                                     f"sequences, not {len(stops)}", "stop_sequences")
            if stops:
                out["stop"] = stops
    else:
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            out["reasoning_effort"] = reasoning_effort_for_budget(thinking.get("budget_tokens"))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if isinstance(body.get("_response_format"), dict):
        out["response_format"] = body["_response_format"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --------------------------------------------------------------------------------------------------------
# Responses


def _parse_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def chat_response_to_ir(resp: dict[str, Any], model: str) -> ir.Response:
    """
    An OpenAI C{chat.completion} as an Anthropic Message naming C{model}.

    OpenAI cannot tell which stop sequence matched, so C{stop_sequence} is always null and C{stop}
    becomes C{end_turn}.
    """
    choices = resp.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[ir.ContentBlock] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # some compatible servers answer with parts
        text = "".join(p["text"] for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_call_id(),
                "name": function.get("name") or "",
                "input": _parse_input(function.get("arguments")),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and legacy.get("name"):
        content.append(
            {"type": "tool_use", "id": new_call_id(), "name": legacy["name"], "input": _parse_input(legacy.get("arguments"))}
        )
    finish_reason = choice.get("finish_reason")
    stop_reason = anthropic_stop_reason(finish_reason)
    if isinstance(refusal, str) and refusal:
        stop_reason = "refusal"
    elif any(b["type"] == "tool_use" for b in content) and stop_reason == "end_turn":
        stop_reason = "tool_use"  # some deployments say "stop" after tool calls
    return {
        "id": message_id_from_chat_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": Usage.from_openai(resp.get("usage") or {}).to_anthropic(),
    }


# --------------------------------------------------------------------------------------------------------
# Streams

_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_quota": "rate_limit_error",
    "tokens": "rate_limit_error",
    "requests": "rate_limit_error",
    "context_length_exceeded": "invalid_request_error",
    "content_filter": "invalid_request_error",
    "server_error": "api_error",
    "overloaded_error": "overloaded_error",
}

class OpenAIToAnthropicStream:
    """
    C{chat.completion.chunk} dicts in, the Anthropic stream event sequence out (written by an
    L{AnthropicStreamWriter}).

    C{message_start} goes out with the first real chunk (Azure's leading C{choices: []} chunk with
    C{prompt_filter_results} and an empty id is skipped), with zero usage as a placeholder: OpenAI tells
    the counts only at the end.  Text, C{reasoning_content} and each tool call become one content block
    each, opened when their first delta arrives and closed when another block opens or the choice
    finishes.  Because C{stream_options.include_usage} puts the usage chunk I{after} the finish chunk,
    C{message_delta} (stop reason and full usage) and C{message_stop} go out with the usage chunk, or
    with the finish chunk when it carries usage itself, or at L{finish}.

    Parallel tool calls: the first streams live; a call that starts while a tool_use block is open is held
    back whole (id, name, every argument fragment) and written after it, when the choice finishes, as its
    own block (start, one C{input_json_delta}, stop).  Azure interleaves the fragments of parallel calls
    (0, 1, 0, 1, ...), and Anthropic's protocol allows deltas only on the open block, so writing each call
    as it came would put a call's delta after its C{content_block_stop}.  A fragment for a call whose
    block was closed by text in between still goes to that block's index
    (L{AnthropicStreamWriter.tool_input_at}): the SDKs accumulate by index.
    """

    __slots__ = (
        "model",
        "message_id",
        "usage",
        "_writer",
        "_tools",
        "_finish_reason",
        "_refused",
        "_has_tools",
        "_held",
    )

    def __init__(self, model: str, *, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Usage | None = None
        self._writer = AnthropicStreamWriter()
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index
        self._finish_reason: str | None = None
        self._refused = False
        self._has_tools = False
        #: OpenAI tool call index -> [id, name, argument fragments] of a call held back (see the docstring)
        self._held: dict[int, list[Any]] = {}

    def _start(self, out: list[ir.StreamEvent], completion_id: Any) -> None:
        if not self.message_id:
            self.message_id = message_id_from_chat_id(completion_id if isinstance(completion_id, str) else None)
        self._writer.start(out, self.message_id, self.model)

    def feed(self, chunk: dict[str, Any]) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._writer.ended:
            return out
        error = chunk.get("error")
        if error is not None:
            if self._writer.started:
                self._write_held(out)  # what came before the error is the client's, as it would have been
            self._writer.fail(out, self._error(error))
            return out
        choices = chunk.get("choices")
        if not self._writer.started:
            if not choices and not chunk.get("id"):
                return out  # Azure's prompt_filter_results chunk
            self._start(out, chunk.get("id"))
        if choices:
            choice = choices[0]
            if choice.get("index", 0):  # only one choice is ever asked for; ignore strays
                return out
            delta = choice.get("delta")
            if delta:
                self._delta(delta, out)
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                self._finish_reason = finish_reason
                self._write_held(out)
                self._writer.close(out)
        usage = chunk.get("usage")
        if usage:
            learnt = Usage.from_openai(usage)
            self.usage = learnt if self.usage is None else self.usage.merged(learnt)
            if self._finish_reason is not None:
                self._end(out)
        return out

    def _delta(self, delta: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        writer = self._writer
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            if writer.open_type != "thinking":
                writer.open(out, {"type": "thinking", "thinking": "", "signature": ""})
            writer.delta(out, {"type": "thinking_delta", "thinking": reasoning})
        text = delta.get("content")
        if text and isinstance(text, str):
            if writer.open_type != "text":
                writer.open(out, {"type": "text", "text": ""})
            writer.text(out, text)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._refused = True
            if writer.open_type != "text":
                writer.open(out, {"type": "text", "text": ""})
            writer.delta(out, {"type": "text_delta", "text": refusal})
        calls = delta.get("tool_calls")
        if calls:
            for call in calls:
                self._tool_call(call, out)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            self._tool_call({"index": -1, "function": legacy}, out)

    def _tool_call(self, call: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        number = call.get("index")
        if not isinstance(number, int):
            number = 0
        function = call.get("function") or {}
        index = self._tools.get(number)
        held = self._held.get(number)
        if index is None and (held is not None or self._writer.open_type == "tool_use" or self._held):
            # Another call while one streams: held back whole until the choice finishes.
            self._has_tools = True
            if held is None:
                held = self._held[number] = [call.get("id") or new_call_id(), function.get("name") or "", []]
            fragment = function.get("arguments")
            if fragment and isinstance(fragment, str):
                held[2].append(fragment)
            return
        if index is None:
            self._has_tools = True
            index = self._writer.open(
                out,
                {"type": "tool_use", "id": call.get("id") or new_call_id(), "name": function.get("name") or "", "input": {}},
            )
            self._tools[number] = index
        arguments = function.get("arguments")
        if arguments and isinstance(arguments, str):
            self._writer.tool_input_at(out, index, arguments)

    def _write_held(self, out: list[ir.StreamEvent]) -> None:
        """The calls held back, each a whole block, in the order they started."""
        held, self._held = self._held, {}
        for number, (call_id, name, fragments) in held.items():
            index = self._writer.open(out, {"type": "tool_use", "id": call_id, "name": name, "input": {}})
            self._tools[number] = index
            if fragments:
                self._writer.tool_input_at(out, index, "".join(fragments))

    def _stop_reason(self) -> str:
        if self._refused and self._finish_reason in (None, "stop", "content_filter"):
            return "refusal"
        reason = anthropic_stop_reason(self._finish_reason)
        if reason == "end_turn" and self._has_tools:
            return "tool_use"
        return reason

    def _end(self, out: list[ir.StreamEvent]) -> None:
        self._writer.finish(out, self._stop_reason(), (self.usage or Usage()).to_anthropic())

    @staticmethod
    def _error(error: Any) -> ir.ErrorEvent:
        kind = None
        message = None
        if isinstance(error, dict):
            kind = error.get("type") or error.get("code")
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        return {
            "type": "error",
            "error": {
                "type": _ERROR_TYPES.get(kind if isinstance(kind, str) else "", "api_error"),
                "message": message if isinstance(message, str) else "upstream error",
            },
        }

    def finish(self) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._writer.ended:
            return out
        if not self._writer.started:
            self._start(out, None)
        self._write_held(out)
        self._end(out)
        return out


@implementer(IWireFormat)
class OpenAIChatWire:
    """
    The OpenAI Chat Completions wire format (L{sapproxy.interfaces.IWireFormat}), as Azure OpenAI serves it.
    """

    name = "openai_chat"
    fit_kind = "openai"
    input_tokens_at_end = True
    dialect_of = "openai_chat"

    def request(self, ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        body = ir_request_to_chat(ir, reasoning_model=target.reasoning)
        return WireRequest("chat/completions", json_text(body), stream)

    def passthrough(self, call: Any, target: WireTarget) -> WireRequest:
        # The gateway always asks for usage, to account for the request; the client sees it only if it asked.
        body = dict(call.body)
        if call.stream:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return WireRequest("chat/completions", json_text(body), call.stream)

    def embeddings(self, body: dict[str, Any], target: WireTarget) -> WireRequest:
        return WireRequest("embeddings", json_text(body), False)

    def stream_source(self, content_type: str) -> Any:
        return SSEJsonSource()

    def stream_to_ir(self, model: str, message_id: str) -> list[Any]:
        return [OpenAIToAnthropicStream(model, message_id=message_id)]

    def passthrough_stream(self, call: Any) -> list[Any]:
        options = call.body.get("stream_options")
        wants_usage = bool(isinstance(options, dict) and options.get("include_usage"))
        return [OpenAIPassthrough(call.model, client_wants_usage=wants_usage)]

    def response_to_ir(self, response: dict[str, Any], model: str) -> IRResponse:
        return chat_response_to_ir(response, model)

    def passthrough_response(self, response: dict[str, Any], call: Any) -> dict[str, Any]:
        return openai_response(response, call.model)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        usage = response.get("usage")
        return Usage.from_openai(usage) if isinstance(usage, dict) else None


WIRE_FORMAT = OpenAIChatWire()
