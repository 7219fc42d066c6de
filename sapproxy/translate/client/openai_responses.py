"""
An OpenAI Responses API client in front of an IR (Anthropic Messages) upstream: Claude and Gemini.

Three converters, as for Chat Completions:

  - L{responses_request_to_ir}: the client's body (its C{input} items, tools, parameters) to an IR request,
    by way of a Chat Completions body: L{sapproxy.translate.client.openai_chat.chat_request_to_ir} already
    knows every rule the IR upstreams impose (alternating turns, tool results first, thinking only with its
    signature, structured output), so the Responses vocabulary is mapped onto it rather than re-implemented;
  - L{ir_message_to_response}: the upstream's whole Message to a C{response} object;
  - L{IRToResponsesStream}: the upstream's stream events to Responses stream events, each with its C{type}
    and C{sequence_number}, in the order OpenAI streams them.

A L{ResponseFrame} carries what a response object repeats about its request (its id, model, tools as the
client declared them, parameters) and builds those objects, so the whole response, every stream event and
the stored copy agree.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from attrs import define, field
from zope.interface import implementer

from sapproxy.errors import GatewayError
from sapproxy.interfaces import IClientAPI, IClientCall
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.client.openai_chat import chat_request_to_ir, openai_error_body
from sapproxy.translate.counting import count_chat_tokens, count_tokens, sketch_tokens
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.estimate import estimate_prompt
from sapproxy.translate.framing.sse import KEEPALIVE_COMMENT, Rendered, encode_event, json_text
from sapproxy.translate.jsontext import json_string
from sapproxy.translate.ids import new_call_id, random_hex
from sapproxy.translate.responses_items import (
    HOSTED_ITEMS, InputStreamer, ToolMap, map_tools, pack_reasoning, unpack_reasoning,
)
from sapproxy.translate.usage import Usage

__all__ = [
    "CLIENT_API",
    "IRToResponsesStream",
    "ResponseFrame",
    "new_response_id",
    "responses_request_to_chat",
    "responses_request_to_ir",
    "ir_message_to_response",
    "input_items",
    "responses_usage",
    "usage_from_responses",
]

#: Item types that carry a tool's output back, and the call kinds they answer.
_OUTPUT_KINDS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")
_CALL_KINDS = ("function_call", "custom_tool_call", "local_shell_call")
_EFFORTS = {"none": "none", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_NO_OUTPUT = "No output was recorded for this call."


def failure_code(kind: Any) -> str:
    """
    A failed response's C{error.code}: OpenAI's clients know a fixed set (their SDKs' types list it), of
    which two fit an upstream's failure.
    """
    return "rate_limit_exceeded" if kind in ("rate_limit", "rate_limit_error", "rate_limit_exceeded") else "server_error"


def new_response_id() -> str:
    return "resp_" + random_hex(48)


def _item_id(prefix: str) -> str:
    return prefix + random_hex(48)


# --------------------------------------------------------------------------------------------------------
# Usage


def responses_usage(usage: Usage | None) -> dict[str, Any]:
    """L{Usage} in the Responses shape (input tokens count the cached ones, as OpenAI's do)."""
    u = usage or Usage()
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def usage_from_responses(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return Usage.from_openai({
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
        "prompt_tokens_details": usage.get("input_tokens_details") or {},
        "completion_tokens_details": usage.get("output_tokens_details") or {},
    })


# --------------------------------------------------------------------------------------------------------
# Requests


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """
    The request's C{input} as a list of items: a string is one user message.

    @raise InvalidRequest: C{input} is missing, or not a string or an array of objects.
    """
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise InvalidRequest("input: required, a string or an array of input items", "input")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object", f"input[{i}]")
    return value


def _parts(content: Any, path: str, role: str) -> Any:
    """A message's Responses content parts as Chat Completions content parts (or its string)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{path} must be a string or an array of content parts", path)
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        ppath = f"{path}[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{ppath} must be an object", ppath)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{ppath}.text must be a string", f"{ppath}.text")
            out.append({"type": "text", "text": text})
        elif kind == "refusal":
            refusal = part.get("refusal")
            if isinstance(refusal, str):
                out.append({"type": "refusal", "refusal": refusal} if role == "assistant" else {"type": "text", "text": refusal})
        elif kind == "input_image" and role not in ("system", "developer"):
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                if part.get("file_id"):
                    raise InvalidRequest(f"{ppath}.file_id: uploaded files are not supported; send image_url "
                                         "(an https or data URL)", f"{ppath}.file_id")
                raise InvalidRequest(f"{ppath}.image_url is required", f"{ppath}.image_url")
            out.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "input_file" and role not in ("system", "developer"):
            data = part.get("file_data")
            if not isinstance(data, str) or not data:
                raise InvalidRequest(f"{ppath}.file_data is required (uploaded files and file_url are not "
                                     "supported)", f"{ppath}.file_data")
            out.append({"type": "file", "file": {"file_data": data, "filename": part.get("filename")}})
        else:
            raise InvalidRequest(f"{ppath}.type {kind!r} is not supported in a {role} message", f"{ppath}.type")
    return out


def _output_content(output: Any, path: str) -> Any:
    """A tool output (a string or an array of input parts) as a Chat Completions tool message's content."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _parts(output, path, "tool")
    if isinstance(output, dict):
        return json.dumps(output, ensure_ascii=False)
    raise InvalidRequest(f"{path} must be a string or an array of content parts", path)


def _text_of_output(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "\n".join(str(p["text"]) for p in output if isinstance(p, dict) and isinstance(p.get("text"), str))
    return json.dumps(output, ensure_ascii=False)


@define
class _Assistant:
    """One assistant message being gathered: its thinking blocks, texts and calls, in order."""

    thinking: list[dict[str, Any]] = field(factory=list)
    content: list[dict[str, Any]] = field(factory=list)
    calls: list[dict[str, Any]] = field(factory=list)

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.thinking:
            msg["thinking_blocks"] = self.thinking
        if self.calls:
            msg["tool_calls"] = [
                {"id": c["call_id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in self.calls
            ]
        return msg


def _messages(items: list[dict[str, Any]], tools: ToolMap, instructions: Any) -> list[dict[str, Any]]:
    """
    The input items as Chat Completions messages, each tool output right after the assistant message
    that made its call, whatever stands between them in the input (Codex puts developer and user
    messages there).  An output whose call is not in the input becomes user text (no upstream accepts
    a result for a call it never made); a call without an output gets a short one (Claude refuses a
    call left unanswered).
    """
    outputs: dict[str, dict[str, Any]] = {}
    calls_made: set[str] = set()
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind in _OUTPUT_KINDS:
            call_id = item.get("call_id") if isinstance(item.get("call_id"), str) else item.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"input[{i}].call_id is required", f"input[{i}].call_id")
            outputs[call_id] = {"content": _output_content(item.get("output"), f"input[{i}].output"),
                                "raw": item.get("output")}
        elif kind in _CALL_KINDS:
            call = tools.function_call_of(item, f"input[{i}]")
            if call is not None:
                calls_made.add(call["call_id"])

    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions.strip():
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("instructions must be a string", "instructions")
    current: _Assistant | None = None
    pending_thinking: list[dict[str, Any]] = []

    def close() -> None:
        nonlocal current
        if current is None:
            return
        messages.append(current.message())
        for call in current.calls:
            out = outputs.get(call["call_id"])
            messages.append({"role": "tool", "tool_call_id": call["call_id"],
                             "content": out["content"] if out is not None else _NO_OUTPUT})
        current = None

    def flush_thinking() -> None:
        # Reasoning with nothing after it in its turn (Gemini's trailing signature): its own assistant
        # message, which the IR merges into the turn, after what came before it.
        nonlocal current, pending_thinking
        if not pending_thinking:
            return
        if current is not None and (current.content or current.calls):
            close()
        if current is None:
            current = _Assistant()
        current.thinking.extend(pending_thinking)
        pending_thinking = []
        close()

    def assistant() -> _Assistant:
        nonlocal current, pending_thinking
        if current is None:
            current = _Assistant()
        if pending_thinking:
            if current.content or current.calls:
                close()
                current = _Assistant()
            current.thinking.extend(pending_thinking)
            pending_thinking = []
        return current

    for i, item in enumerate(items):
        path = f"input[{i}]"
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            role = item.get("role")
            content = item.get("content")
            if role in ("system", "developer"):
                parts = _parts(content, f"{path}.content", role)
                messages.append({"role": "system", "content": parts})
            elif role == "user":
                flush_thinking()
                close()
                messages.append({"role": "user", "content": _parts(content, f"{path}.content", role)})
            elif role == "assistant":
                parts = _parts(content, f"{path}.content", role)
                target = assistant()
                if target.calls:
                    close()
                    target = assistant()
                if isinstance(parts, str):
                    parts = [{"type": "text", "text": parts}]
                target.content.extend(parts)
            else:
                raise InvalidRequest(f"{path}.role {role!r} is not supported", f"{path}.role")
        elif kind in _CALL_KINDS:
            call = tools.function_call_of(item, path)
            assert call is not None
            assistant().calls.append(call)
        elif kind in _OUTPUT_KINDS:
            call_id = item.get("call_id") if isinstance(item.get("call_id"), str) else item.get("id")
            if current is not None and any(c["call_id"] == call_id for c in current.calls):
                close()  # the turn that made the call is over: its outputs follow it
            elif call_id not in calls_made:
                flush_thinking()
                close()
                text = _text_of_output(item.get("output"))
                messages.append({"role": "user", "content": f"Output of tool call {call_id}:\n{text}"})
        elif kind == "reasoning":
            blocks = unpack_reasoning(item.get("encrypted_content"))
            if blocks:
                if current is not None and (current.content or current.calls):
                    close()
                pending_thinking.extend(blocks)
        elif kind == "item_reference":
            raise InvalidRequest(f"{path}: item_reference is only supported for items of a stored response; "
                                 "send the item itself", f"{path}.id")
        elif kind in HOSTED_ITEMS:
            continue
        else:
            raise InvalidRequest(f"{path}.type {kind!r} is not a supported input item", f"{path}.type")
    flush_thinking()
    close()
    return messages


def responses_request_to_chat(body: dict[str, Any], tools: ToolMap,
                              history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """
    A Responses request body as a Chat Completions body (see the module docstring).

    @param history: the items of earlier turns (C{previous_response_id}), placed before C{input}.
    """
    items = (history or []) + input_items(body)
    chat: dict[str, Any] = {"model": body.get("model"), "messages": _messages(items, tools, body.get("instructions"))}
    if not any(m["role"] in ("user", "assistant") for m in chat["messages"]):
        raise InvalidRequest("input must hold at least one user or assistant message", "input")
    max_output = body.get("max_output_tokens")
    if max_output is not None:
        if not isinstance(max_output, int) or isinstance(max_output, bool) or max_output < 1:
            raise InvalidRequest("max_output_tokens must be a positive integer", "max_output_tokens")
        chat["max_completion_tokens"] = max_output
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InvalidRequest(f"{key} must be a number", key)
            chat[key] = value
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidRequest("reasoning must be an object", "reasoning")
        effort = reasoning.get("effort")
        if effort is not None:
            if effort not in _EFFORTS:
                raise InvalidRequest("reasoning.effort must be one of none, minimal, low, medium, high, xhigh",
                                     "reasoning.effort")
            chat["reasoning_effort"] = _EFFORTS[effort]
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise InvalidRequest("text must be an object", "text")
        fmt = text.get("format")
        if isinstance(fmt, dict):
            kind = fmt.get("type")
            if kind == "json_schema":
                if not isinstance(fmt.get("schema"), dict):
                    raise InvalidRequest("text.format.schema must be an object", "text.format.schema")
                spec = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
                if isinstance(fmt.get("strict"), bool):
                    spec["strict"] = fmt["strict"]
                chat["response_format"] = {"type": "json_schema", "json_schema": spec}
            elif kind == "json_object":
                chat["response_format"] = {"type": "json_object"}
            elif kind not in ("text", None):
                raise InvalidRequest(f"text.format.type {kind!r} is not supported", "text.format.type")
    if tools.functions:
        chat["tools"] = [
            {"type": "function", "function": {k: v for k, v in f.items() if k != "type"}} for f in tools.functions
        ]
        choice = tools.tool_choice
        if isinstance(choice, dict) and choice.get("type") == "function":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
            chat["tool_choice"] = {"type": "allowed_tools", "allowed_tools": {
                "mode": choice["mode"], "tools": [{"type": "function", "function": {"name": t["name"]}}
                                                  for t in choice["tools"]]}}
        elif choice is not None:
            chat["tool_choice"] = choice
        if body.get("parallel_tool_calls") is False:
            chat["parallel_tool_calls"] = False
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        chat["user"] = user
    if "stream" in body:
        chat["stream"] = bool(body["stream"])
    return chat


def responses_request_to_ir(body: dict[str, Any], tools: ToolMap | None = None,
                            history: list[dict[str, Any]] | None = None) -> IRRequest:
    """
    A Responses request body as an IR (Anthropic Messages) request body.

    @raise InvalidRequest: naming the offending field of the client's body.
    """
    if tools is None:
        tools = map_tools(body.get("tools"), body.get("tool_choice"))
    chat = responses_request_to_chat(body, tools, history)
    try:
        return chat_request_to_ir(chat)
    except InvalidRequest as e:
        if e.param is not None and e.param.startswith("messages"):
            # Said in the client's terms: it sent input items, not chat messages.
            raise InvalidRequest("input must hold at least one user or assistant message with content "
                                 "(empty and whitespace-only texts do not count)", "input") from None
        raise


# --------------------------------------------------------------------------------------------------------
# The response object


#: The request settings a response object repeats.
ECHOED = ("reasoning", "text", "instructions", "max_output_tokens", "parallel_tool_calls", "prompt_cache_key",
          "safety_identifier", "store", "temperature", "tool_choice", "tools", "top_p", "truncation", "user",
          "metadata")


@define
class ResponseFrame:
    """
    What every response object of one request repeats, and the builder of those objects.

    @ivar echoed: the request's settings a response object repeats (L{ECHOED}), not its input: a stream keeps
        its frame to the end, and must not keep the conversation with it.
    @ivar include_encrypted: the client asked for C{reasoning.encrypted_content} (C{include}); stored
        copies always keep it, so C{previous_response_id} loses nothing.
    """

    response_id: str
    model: str
    created_at: int
    echoed: dict[str, Any]
    tools: ToolMap
    include_encrypted: bool = False
    previous_response_id: str | None = None

    @classmethod
    def for_request(cls, body: dict[str, Any], model: str, tools: ToolMap, *, created_at: int,
                    response_id: str | None = None) -> ResponseFrame:
        include = body.get("include")
        wants = isinstance(include, list) and "reasoning.encrypted_content" in include
        previous = body.get("previous_response_id")
        echoed = {key: body[key] for key in ECHOED if key in body}
        return cls(response_id or new_response_id(), model, created_at, echoed, tools, wants,
                   previous if isinstance(previous, str) else None)

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None, *,
                 error: dict[str, Any] | None = None, incomplete: str | None = None) -> dict[str, Any]:
        body = self.echoed
        reasoning: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
        text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
        fmt = text["format"] if isinstance(text.get("format"), dict) else {"type": "text"}
        text_out: dict[str, Any] = {"format": fmt}
        if text.get("verbosity") is not None:
            text_out["verbosity"] = text["verbosity"]
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
            "previous_response_id": self.previous_response_id,
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature", 1.0),
            "text": text_out,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation") or "disabled",
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def for_client(self, item: dict[str, Any]) -> dict[str, Any]:
        """An output item as the client sees it: encrypted content only when asked for."""
        if item.get("type") == "reasoning" and not self.include_encrypted and "encrypted_content" in item:
            item = dict(item)
            del item["encrypted_content"]
        return item


def _reasoning_item(blocks: list[dict[str, Any]], item_id: str | None = None) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": b["thinking"]} for b in blocks
               if b.get("type") == "thinking" and b.get("thinking")]
    return {"id": item_id or _item_id("rs_"), "type": "reasoning", "summary": summary,
            "encrypted_content": pack_reasoning(blocks)}


def _message_item(texts: list[str], item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id or _item_id("msg_"), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": t} for t in texts]}


def ir_output_items(message: Mapping[str, Any], tools: ToolMap) -> list[dict[str, Any]]:
    """An IR message's content blocks as Responses output items (encrypted content included)."""
    items: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush_thinking() -> None:
        if thinking:
            items.append(_reasoning_item(list(thinking)))
            thinking.clear()

    def flush_texts() -> None:
        if texts:
            items.append(_message_item(list(texts)))
            texts.clear()

    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "thinking":
            flush_texts()
            thinking.append({"type": "thinking", "thinking": block.get("thinking") or "",
                             "signature": block.get("signature") or ""})
        elif kind == "redacted_thinking":
            flush_texts()
            thinking.append({"type": "redacted_thinking", "data": block.get("data") or ""})
        elif kind == "text":
            flush_thinking()
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            flush_thinking()
            flush_texts()
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            items.append(tools.call_item(block.get("name") or "", block.get("id") or new_call_id(), arguments,
                                         _item_id("fc_")))
    flush_thinking()
    flush_texts()
    return items


def _incomplete_reason(stop_reason: Any) -> str | None:
    if stop_reason in ("max_tokens", "model_context_window_exceeded"):
        return "max_output_tokens"
    if stop_reason == "refusal":
        return "content_filter"
    return None


def ir_message_to_response(message: Mapping[str, Any], frame: ResponseFrame) -> dict[str, Any]:
    """
    An IR message as the whole C{response} object, with every encrypted content kept (the caller stores
    this one and gives the client L{client_view} of it).
    """
    output = ir_output_items(message, frame.tools)
    usage = Usage.from_anthropic(message.get("usage") or {})
    reason = _incomplete_reason(message.get("stop_reason"))
    return frame.response("incomplete" if reason else "completed", output, responses_usage(usage), incomplete=reason)


def client_view(response: dict[str, Any], frame: ResponseFrame) -> dict[str, Any]:
    """A stored response object as the client of C{frame} sees it."""
    if frame.include_encrypted:
        return response
    view = dict(response)
    view["output"] = [frame.for_client(item) for item in response.get("output") or ()]
    return view


# --------------------------------------------------------------------------------------------------------
# Streams

_DELTA_SUFFIX = b',"logprobs":[]}'


@define
class _Block:
    kind: str  # text, thinking, tool
    output_index: int
    item: dict[str, Any]
    parts: list[str] = field(factory=list)
    blocks: list[dict[str, Any]] = field(factory=list)  # thinking blocks of a reasoning item
    summary_open: bool = False
    name: str = ""
    call_id: str = ""
    template: tuple[bytes, bytes] | None = None
    streamer: InputStreamer | None = None  # a custom tool call's input, decoded as its JSON streams


class IRToResponsesStream:
    """
    IR stream events in, Responses stream events out.

    C{response.created} and C{response.in_progress} come first; each IR content block is one output item
    (C{output_item.added} ... C{output_item.done}) with its own events in between; the end is
    C{response.completed} (or C{response.incomplete} when the answer was cut by the token limit) carrying
    the whole response and its usage.  An upstream error, or a stream that ends without its
    C{message_stop}, ends with C{response.failed}: never a C{completed} for a truncated answer.

    @ivar final: the whole response object of the last event (with every encrypted content), for the
        store; None until the stream ended.
    """

    def __init__(self, frame: ResponseFrame) -> None:
        self.frame = frame
        self.final: dict[str, Any] | None = None
        self._seq = 0
        self._started = False
        self._done = False
        self._blocks: dict[int, _Block] = {}
        self._output: list[dict[str, Any]] = []  # every finished item, encrypted content included
        self._order: list[int] = []  # their output indexes
        self._stop_reason: str | None = None
        self._usage: Usage | None = None
        self._text_template: tuple[bytes, bytes] | None = None

    # Events

    def _event(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload["sequence_number"] = self._seq
        self._seq += 1
        return payload

    def _start(self, out: list[dict[str, Any]]) -> None:
        if self._started:
            return
        self._started = True
        created = self.frame.response("in_progress", [])
        out.append(self._event({"type": "response.created", "response": created}))
        out.append(self._event({"type": "response.in_progress", "response": dict(created)}))

    def _learn(self, usage: Any) -> None:
        if isinstance(usage, dict):
            learnt = Usage.from_anthropic(usage)
            self._usage = learnt if self._usage is None else self._usage.merged(learnt)

    def _text_delta(self, block: _Block, text: str) -> dict[str, Any]:
        """
        An C{output_text.delta}: the hottest event of a stream, rendered from the block's template (see
        L{Rendered}); only the sequence number and the text change from one to the next.
        """
        seq = self._seq
        self._seq += 1
        payload = {"type": "response.output_text.delta", "sequence_number": seq, "item_id": block.item["id"],
                   "output_index": block.output_index, "content_index": 0, "delta": text, "logprobs": []}
        if block.template is None:
            block.template = (b'{"type":"response.output_text.delta","sequence_number":',
                              b',"item_id":' + json_text(block.item["id"]) + b',"output_index":'
                              + str(block.output_index).encode() + b',"content_index":0,"delta":')
        head, middle = block.template
        return Rendered(payload, head + str(seq).encode() + middle + json_string(text) + _DELTA_SUFFIX)

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if self._done:
            return []
        kind = event.get("type")
        out: list[dict[str, Any]] = []
        if kind == "content_block_delta":
            self._start(out)
            block = self._blocks.get(event.get("index"))  # type: ignore[arg-type]
            delta = event.get("delta") or {}
            dkind = delta.get("type")
            if block is None:
                return out
            if dkind == "text_delta" and block.kind == "text":
                text = delta.get("text")
                if isinstance(text, str) and text:
                    block.parts.append(text)
                    out.append(self._text_delta(block, text))
            elif dkind == "thinking_delta" and block.kind == "thinking":
                text = delta.get("thinking")
                if isinstance(text, str) and text:
                    self._summary_delta(block, text, out)
            elif dkind == "signature_delta" and block.kind == "thinking":
                sig = delta.get("signature")
                if isinstance(sig, str) and block.blocks:
                    block.blocks[-1]["signature"] = sig
            elif dkind == "input_json_delta" and block.kind == "tool":
                fragment = delta.get("partial_json")
                if isinstance(fragment, str) and fragment:
                    block.parts.append(fragment)
                    if block.item["type"] == "function_call":
                        out.append(self._event({"type": "response.function_call_arguments.delta",
                                                "item_id": block.item["id"], "output_index": block.output_index,
                                                "delta": fragment}))
                    elif block.streamer is not None:
                        text = block.streamer.feed(fragment)
                        if text:
                            out.append(self._event({"type": "response.custom_tool_call_input.delta",
                                                    "item_id": block.item["id"], "output_index": block.output_index,
                                                    "delta": text}))
            return out
        if kind == "content_block_start":
            self._start(out)
            self._open(event, out)
            return out
        if kind == "content_block_stop":
            block = self._blocks.pop(event.get("index"), None)  # type: ignore[arg-type]
            if block is not None:
                self._close_block(block, out)
            return out
        if kind == "message_start":
            self._learn((event.get("message") or {}).get("usage"))
            self._start(out)
            return out
        if kind == "message_delta":
            self._learn(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason is not None:
                self._stop_reason = reason
            return out
        if kind == "message_stop":
            self._start(out)
            return self._finish(out)
        if kind == "error":
            error = event.get("error") or {}
            return self._fail(out, failure_code(error.get("type")), str(error.get("message") or "the upstream failed"))
        return out

    def _summary_delta(self, block: _Block, text: str, out: list[dict[str, Any]]) -> None:
        item_id = block.item["id"]
        if not block.summary_open:
            block.summary_open = True
            out.append(self._event({"type": "response.reasoning_summary_part.added", "item_id": item_id,
                                    "output_index": block.output_index, "summary_index": 0,
                                    "part": {"type": "summary_text", "text": ""}}))
        block.parts.append(text)
        if block.blocks:
            block.blocks[-1]["thinking"] = block.blocks[-1].get("thinking", "") + text
        out.append(self._event({"type": "response.reasoning_summary_text.delta", "item_id": item_id,
                                "output_index": block.output_index, "summary_index": 0, "delta": text}))

    def _open(self, event: dict[str, Any], out: list[dict[str, Any]]) -> None:
        index = event.get("index")
        cb = event.get("content_block") or {}
        bkind = cb.get("type")
        output_index = len(self._output) + len(self._blocks)
        if bkind == "text":
            item = _message_item([], status="in_progress")
            item["content"] = []
            block = _Block("text", output_index, item)
            self._blocks[index] = block  # type: ignore[index]
            out.append(self._event({"type": "response.output_item.added", "output_index": output_index,
                                    "item": dict(item, content=[])}))
            out.append(self._event({"type": "response.content_part.added", "item_id": item["id"],
                                    "output_index": output_index, "content_index": 0,
                                    "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}))
            if cb.get("text"):
                block.parts.append(cb["text"])
                out.append(self._text_delta(block, cb["text"]))
        elif bkind in ("thinking", "redacted_thinking"):
            item = {"id": _item_id("rs_"), "type": "reasoning", "summary": []}
            block = _Block("thinking", output_index, item)
            if bkind == "thinking":
                block.blocks.append({"type": "thinking", "thinking": "", "signature": cb.get("signature") or ""})
            else:
                block.blocks.append({"type": "redacted_thinking", "data": cb.get("data") or ""})
            self._blocks[index] = block  # type: ignore[index]
            out.append(self._event({"type": "response.output_item.added", "output_index": output_index,
                                    "item": dict(item)}))
            if bkind == "thinking" and cb.get("thinking"):
                self._summary_delta(block, cb["thinking"], out)
        elif bkind == "tool_use":
            name = cb.get("name") or ""
            call_id = cb.get("id") or new_call_id()
            item = self.frame.tools.opening_item(name, call_id, _item_id("fc_"))
            block = _Block("tool", output_index, item, name=name, call_id=call_id,
                           streamer=InputStreamer() if item["type"] == "custom_tool_call" else None)
            self._blocks[index] = block  # type: ignore[index]
            out.append(self._event({"type": "response.output_item.added", "output_index": output_index,
                                    "item": dict(item)}))
            if cb.get("input"):
                # Converters that know the whole input up front (Gemini) put it on the start.
                fragment = json.dumps(cb["input"], ensure_ascii=False)
                block.parts.append(fragment)
                if item["type"] == "function_call":
                    out.append(self._event({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                                            "output_index": output_index, "delta": fragment}))
        # server tool blocks and the like are the upstream's own business: not output items.

    def _close_block(self, block: _Block, out: list[dict[str, Any]]) -> None:
        item = block.item
        item_id = item["id"]
        index = block.output_index
        if block.kind == "text":
            text = "".join(block.parts)
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            out.append(self._event({"type": "response.output_text.done", "item_id": item_id, "output_index": index,
                                    "content_index": 0, "text": text, "logprobs": []}))
            out.append(self._event({"type": "response.content_part.done", "item_id": item_id, "output_index": index,
                                    "content_index": 0, "part": part}))
            done = dict(item, status="completed", content=[part])
        elif block.kind == "thinking":
            text = "".join(block.parts)
            if block.summary_open:
                out.append(self._event({"type": "response.reasoning_summary_text.done", "item_id": item_id,
                                        "output_index": index, "summary_index": 0, "text": text}))
                out.append(self._event({"type": "response.reasoning_summary_part.done", "item_id": item_id,
                                        "output_index": index, "summary_index": 0,
                                        "part": {"type": "summary_text", "text": text}}))
            done = dict(item, summary=[{"type": "summary_text", "text": text}] if text else [],
                        encrypted_content=pack_reasoning(block.blocks))
        else:
            arguments = "".join(block.parts)
            done = self.frame.tools.call_item(block.name, block.call_id, arguments, item_id)
            done["id"] = item_id
            if done["type"] == "function_call":
                out.append(self._event({"type": "response.function_call_arguments.done", "item_id": item_id,
                                        "output_index": index, "name": done["name"], "arguments": arguments}))
            elif done["type"] == "custom_tool_call":
                # What was not streamed yet (all of it when the arguments had another shape).
                sent = block.streamer.streamed if block.streamer is not None else ""
                if not done["input"].startswith(sent):
                    done["input"] = sent  # arguments cut short: the input is what the client was sent
                rest = done["input"][len(sent):]
                if rest:
                    out.append(self._event({"type": "response.custom_tool_call_input.delta", "item_id": item_id,
                                            "output_index": index, "delta": rest}))
                out.append(self._event({"type": "response.custom_tool_call_input.done", "item_id": item_id,
                                        "output_index": index, "input": done["input"]}))
        self._output.append(done)
        self._order.append(index)
        out.append(self._event({"type": "response.output_item.done", "output_index": index,
                                "item": self.frame.for_client(done)}))

    def _finish(self, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index in sorted(self._blocks):
            self._close_block(self._blocks.pop(index), out)
        reason = _incomplete_reason(self._stop_reason)
        usage = responses_usage(self._usage)
        output = [item for _, item in sorted(zip(self._order, self._output), key=lambda pair: pair[0])]
        final = self.frame.response("incomplete" if reason else "completed", output, usage,
                                    incomplete=reason)
        self.final = final
        self._done = True
        client = dict(final, output=[self.frame.for_client(i) for i in final["output"]])
        out.append(self._event({"type": "response.incomplete" if reason else "response.completed",
                                "response": client}))
        return out

    def _fail(self, out: list[dict[str, Any]], code: str, message: str) -> list[dict[str, Any]]:
        self._start(out)
        self._done = True
        final = self.frame.response("failed", [self.frame.for_client(i) for i in self._output],
                                    responses_usage(self._usage) if self._usage else None,
                                    error={"code": code, "message": message})
        out.append(self._event({"type": "response.failed", "response": final}))
        return out

    @property
    def usage(self) -> Usage | None:
        return None  # the upstream translator before this one knows it first-hand

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        """The stream broke (the relay noticed): its last event."""
        if self._done:
            return []
        return self._fail([], failure_code(code), message)

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        return self._fail([], "server_error", "the upstream stream ended before the response was complete")


# --------------------------------------------------------------------------------------------------------
# The client API


@implementer(IClientCall)
class ResponsesCall:
    """
    One Responses API request: its tools as the upstream sees them, the history C{previous_response_id}
    expands to, and what its answer carries (L{ResponseFrame}).  The translators and whole responses it makes
    are kept, so the surface can store the response of the attempt that answered (L{final}).
    """

    def __init__(self, body: dict[str, Any], model: str, *, history: list[dict[str, Any]] | None = None,
                 created: int | None = None) -> None:
        self.body = body
        self.model = model
        self.stream = bool(body.get("stream"))
        self.history = list(history or ())
        self.tools = map_tools(body.get("tools"), body.get("tool_choice"))
        self.frame = ResponseFrame.for_request(body, model, self.tools,
                                               created_at=created if created is not None else int(time.time()))
        self.translators: list[Any] = []
        self.finals: list[dict[str, Any]] = []
        self._ir: IRRequest | None = None
        self._prompt: int | None = None
        self._kept: list[dict[str, Any]] | None = None

    @property
    def final(self) -> dict[str, Any] | None:
        """The finished response object of the attempt that answered (every encrypted content kept), or None."""
        if self.finals:
            return self.finals[-1]
        if self.translators:
            return self.translators[-1].final  # type: ignore[no-any-return]
        return None

    def items(self) -> list[dict[str, Any]]:
        """The conversation this request continues and its own input: what a stored response keeps."""
        if self._kept is not None:
            return self._kept
        return self.history + input_items(self.body)

    def ir(self) -> IRRequest:
        if self._ir is None:
            self._ir = responses_request_to_ir(self.body, self.tools, self.history)
        return self._ir

    def response_from_ir(self, message: IRResponse) -> dict[str, Any]:
        full = ir_message_to_response(message, self.frame)
        self.finals.append(full)
        return client_view(full, self.frame)

    def stream_from_ir(self) -> list[Any]:
        translator = IRToResponsesStream(self.frame)
        self.translators.append(translator)
        return [translator]

    def committed(self, family: str) -> None:
        if self._prompt is None:
            self._prompt = sketch_tokens([self.history, self.body], family)
            # A stored response keeps its input (GET .../input_items, previous_response_id); nothing else does.
            self._kept = self.items() if self.body.get("store", True) is not False else []
        self.body, self._ir, self.history = {}, None, []

    def prompt_tokens(self, family: str) -> int:
        if self._prompt is not None:
            return self._prompt
        if self._ir is not None:
            return estimate_prompt(count_tokens, self._ir, family)
        try:
            chat = responses_request_to_chat(self.body, self.tools, self.history)
        except InvalidRequest:
            return 0
        return estimate_prompt(count_chat_tokens, chat, family)


@implementer(IClientAPI)
class ResponsesAPI:
    """
    The OpenAI Responses API dialect (L{sapproxy.interfaces.IClientAPI}): GPT deployments speak it natively
    (wire format C{openai_responses}); its streams have named events and no end marker.
    """

    name = "responses"
    input_tokens_at_start = False
    native_wire = "openai_responses"
    done = b""
    keepalive = KEEPALIVE_COMMENT

    def call(self, body: dict[str, Any], model: str, hints: dict[str, Any]) -> ResponsesCall:
        """@param hints: C{history}, the items of the stored conversation C{previous_response_id} names."""
        return ResponsesCall(body, model, history=hints.get("history"))

    def encode(self, event: Any) -> bytes:
        return encode_event(event)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return openai_error_body(error)

    def error_event(self, error: GatewayError) -> bytes:
        # Only for a stream whose translator could not say response.failed itself (see StreamPipeline.failure).
        return encode_event({"type": "error", "code": failure_code(error.kind), "message": error.message,
                             "param": error.param, "sequence_number": 0})

    def prompt_tokens(self, body: dict[str, Any], family: str) -> int:
        try:
            chat = responses_request_to_chat(body, map_tools(body.get("tools"), body.get("tool_choice")))
        except InvalidRequest:
            return 0
        return estimate_prompt(count_chat_tokens, chat, family)


CLIENT_API = ResponsesAPI()
