"""
The native GPT wire format of the Responses API: SAP AI Core's GPT deployments answer
C{{deploymentUrl}/responses?api-version=...} themselves, streamed and not.

Why native rather than through C{/chat/completions}: the Responses API is the one GPT-5-class models are
built around (reasoning items carried across turns, C{text.verbosity}, reasoning summaries), and a client
that speaks it loses nothing on the way.  What the deployment does not take is sanitised away
(L{gpt_request}): it accepts only C{function} tools, so the client's custom, namespace and local_shell tools
go as functions and their calls come back mapped (L{ResponsesPassthrough}, L{native_response}); hosted tools
and their history items are dropped; the gateway keeps the conversation itself (C{previous_response_id}
is expanded before sending, C{store} is false upstream) so any deployment of the model can serve a
follow-up.
"""

from __future__ import annotations

import json
from typing import Any, cast

from zope.interface import implementer

from sapproxy.interfaces import IWireFormat
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.client.openai_responses import (
    ResponseFrame, client_view, failure_code, input_items, responses_usage, usage_from_responses,
)
from sapproxy.translate.anthropic_stream import AnthropicStreamWriter
from sapproxy.translate.framing.pipeline import SSEJsonSource
from sapproxy.translate.framing.sse import Rendered, json_text
from sapproxy.translate.jsontext import json_string
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire import NoEmbeddings, WireRequest, WireTarget
from sapproxy.translate.wire.openai_chat import ir_request_to_chat
from sapproxy.translate.responses_items import HOSTED_ITEMS, InputStreamer, ToolMap, custom_input, is_ours

__all__ = ["WIRE_FORMAT", "ResponsesPassthrough", "ResponsesToIRStream", "chat_to_responses", "gpt_request",
           "native_response", "responses_to_ir_message"]

_OUTPUTS = ("custom_tool_call_output", "local_shell_call_output")
#: Keys the gateway answers itself, or that name things only OpenAI's own platform has.
_DROPPED_KEYS = ("previous_response_id", "service_tier", "metadata", "background", "conversation", "prompt",
                 "safety_identifier", "stream_options", "store", "include", "tool_choice", "tools")


def _upstream_item(item: dict[str, Any], tools: ToolMap, path: str) -> dict[str, Any] | None:
    kind = item.get("type")
    if kind is None and "role" in item:
        return item
    if kind in ("function_call", "custom_tool_call", "local_shell_call"):
        call = tools.function_call_of(item, path)
        assert call is not None
        return {"type": "function_call", **call}
    if kind in _OUTPUTS:
        call_id = item.get("call_id") if isinstance(item.get("call_id"), str) else item.get("id")
        output = item.get("output")
        return {"type": "function_call_output", "call_id": call_id, "output": output if output is not None else ""}
    if kind == "reasoning":
        if is_ours(item.get("encrypted_content")):
            return None  # Claude's or Gemini's: no GPT can read it
        return {k: v for k, v in item.items() if k != "status"}
    if kind in HOSTED_ITEMS:
        return None
    return item


def _paired(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    Every call answered and every output answering a call, as OpenAI requires: an output whose call is not
    in the input (its call was a hosted tool's, or the client trimmed it) becomes user text; a call left
    without an output gets a short one right after it.
    """
    calls = {i.get("call_id") for i in items if i.get("type") == "function_call"}
    answered = {i.get("call_id") for i in items if i.get("type") == "function_call_output"}
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "function_call_output" and item.get("call_id") not in calls:
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            out.append({"role": "user", "content": f"Output of tool call {item.get('call_id')}:\n{text}"})
            continue
        out.append(item)
        if kind == "function_call" and item.get("call_id") not in answered:
            out.append({"type": "function_call_output", "call_id": item.get("call_id"),
                        "output": "No output was recorded for this call."})
    return out


def gpt_request(body: dict[str, Any], tools: ToolMap, *, model: str, reasoning_model: bool,
                history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """
    The body for a GPT deployment's C{/responses}: function tools only, the gateway's own history expanded
    in C{input}, C{store} off, encrypted reasoning asked for (for the gateway's store) on reasoning models.
    """
    upstream = {k: v for k, v in body.items() if k not in _DROPPED_KEYS}
    upstream["model"] = model
    items = (history or []) + input_items(body)
    mapped = []
    for i, item in enumerate(items):
        converted = _upstream_item(item, tools, f"input[{i}]")
        if converted is not None:
            mapped.append(converted)
    upstream["input"] = _paired(mapped)
    if not reasoning_model:
        upstream.pop("reasoning", None)  # a model without reasoning refuses the parameter
    else:
        for key in ("temperature", "top_p"):
            if upstream.get(key) not in (None, 1, 1.0):
                del upstream[key]  # reasoning models take only the default sampling
    if tools.functions:
        upstream["tools"] = tools.functions
        if tools.tool_choice is not None:
            upstream["tool_choice"] = tools.tool_choice
    upstream["store"] = False
    if reasoning_model:
        upstream["include"] = ["reasoning.encrypted_content"]
    return upstream


def _client_item(item: Any, frame: ResponseFrame) -> Any:
    if isinstance(item, dict) and item.get("type") == "function_call":
        name = item.get("name")
        if isinstance(name, str) and frame.tools.kind_of(name) != "function":
            mapped = frame.tools.call_item(name, item.get("call_id") or "", item.get("arguments") or "",
                                           item.get("id") or "", item.get("status") or "completed")
            if item.get("status") == "in_progress":
                mapped = frame.tools.opening_item(name, item.get("call_id") or "", item.get("id") or "")
            return mapped
    return item


def _response(upstream: Any, frame: ResponseFrame) -> dict[str, Any]:
    """The upstream's response object as the client's: its id, model, tools; output items mapped back."""
    if not isinstance(upstream, dict):
        upstream = {}
    output = [_client_item(i, frame) for i in upstream.get("output") or ()]
    status = upstream.get("status") if isinstance(upstream.get("status"), str) else "completed"
    details = upstream.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    usage = usage_from_responses(upstream.get("usage"))
    # Usage in the gateway's one shape (every detail the SDKs' types list), whatever the deployment reported.
    made = frame.response(status, output, responses_usage(usage) if usage is not None else None,
                          error=upstream.get("error"), incomplete=reason)
    for key in ("created_at", "reasoning", "temperature", "top_p", "text", "service_tier"):
        if upstream.get(key) is not None and key != "service_tier":
            made[key] = upstream[key]
    return made


def native_response(upstream: dict[str, Any], frame: ResponseFrame) -> dict[str, Any]:
    """A whole upstream response for the client (every encrypted content kept; see L{client_view})."""
    return _response(upstream, frame)


class ResponsesPassthrough:
    """
    Upstream Responses events in, the client's Responses events out.

    Events pass as they are, but: response objects carry the gateway's id, the model the client named and
    its own tools; calls of functions that stand for custom, namespace and local_shell tools become those
    items again (a custom tool's input is sent whole at its end, since upstream it streams inside JSON);
    encrypted reasoning reaches the client only when it asked for it; sequence numbers are the gateway's,
    since events are dropped and added; a stream that ends without a terminal event ends with
    C{response.failed}.

    @ivar final: the last response object (every encrypted content kept), for the store.
    """

    __slots__ = ("frame", "final", "usage", "_seq", "_items", "_done", "_started", "_template_key", "_template",
                 "_inputs", "_sent_inputs")

    _TERMINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self, frame: ResponseFrame) -> None:
        self.frame = frame
        self.final: dict[str, Any] | None = None
        self.usage: Usage | None = None
        self._seq = 0
        #: upstream item id -> function name, for calls that are not plain functions
        self._items: dict[str, str] = {}
        self._done = False
        self._started = False
        self._template_key: tuple[Any, Any, Any] | None = None
        self._template = b""
        #: upstream item id -> the custom tool input decoded so far / the input the client was sent whole
        self._inputs: dict[str, InputStreamer] = {}
        self._sent_inputs: dict[str, str] = {}

    def _out(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        event["sequence_number"] = self._seq
        self._seq += 1
        return [event]

    def _text_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """
        An C{output_text.delta}, the stream's hottest event: rendered from a per-item template (L{Rendered})
        rather than serialised again; only its sequence number and text change from one to the next.
        """
        seq = self._seq
        self._seq += 1
        delta = event.get("delta")
        key = (event.get("item_id"), event.get("output_index"), event.get("content_index"))
        if not isinstance(delta, str) or not isinstance(key[0], str) or not isinstance(key[1], int) \
                or not isinstance(key[2], int):
            event["sequence_number"] = seq
            return [event]
        if self._template_key != key:
            self._template_key = key
            self._template = (b',"item_id":' + json_text(key[0]) + b',"output_index":' + str(key[1]).encode()
                              + b',"content_index":' + str(key[2]).encode() + b',"delta":')
        payload = {"type": "response.output_text.delta", "sequence_number": seq, "item_id": key[0],
                   "output_index": key[1], "content_index": key[2], "delta": delta, "logprobs": []}
        return [Rendered(payload, b'{"type":"response.output_text.delta","sequence_number":' + str(seq).encode()
                         + self._template + json_string(delta) + b',"logprobs":[]}')]

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if self._done or not isinstance(event, dict):
            return []
        kind = event.get("type")
        if kind == "response.output_text.delta":
            return self._text_delta(event)
        if kind == "response.reasoning_summary_text.delta":
            return self._out(event)
        if not isinstance(kind, str):
            return []
        frame = self.frame
        if kind.startswith("response.") and isinstance(event.get("response"), dict):
            self._started = True
            upstream = event["response"]
            made = _response(upstream, frame)
            if kind in self._TERMINAL:
                self._done = True
                self.final = made
                learnt = usage_from_responses(upstream.get("usage"))
                if learnt is not None:
                    self.usage = learnt
                made = dict(made, output=[frame.for_client(i) for i in made["output"]])
            event["response"] = made
            return self._out(event)
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                name = item.get("name")
                if isinstance(name, str) and frame.tools.kind_of(name) != "function":
                    self._items[str(item.get("id"))] = name
            mapped = _client_item(item, frame)
            if kind == "response.output_item.done" and isinstance(mapped, dict) and isinstance(item, dict) \
                    and mapped.get("type") == "custom_tool_call" and str(item.get("id")) in self._sent_inputs:
                mapped["input"] = self._sent_inputs[str(item.get("id"))]
            if kind == "response.output_item.added" and isinstance(item, dict) and mapped is not item:
                mapped = frame.tools.opening_item(item.get("name") or "", item.get("call_id") or "",
                                                  item.get("id") or "")
            event["item"] = frame.for_client(mapped) if isinstance(mapped, dict) else mapped
            return self._out(event)
        if kind in ("response.function_call_arguments.delta", "response.function_call_arguments.done"):
            name = self._items.get(str(event.get("item_id")))
            if name is None:
                return self._out(event)
            what = frame.tools.kind_of(name)
            if what == "namespace":
                if kind.endswith(".done"):
                    event["name"] = frame.tools.namespaced[name][1]
                return self._out(event)
            if what == "custom":
                item_id = str(event.get("item_id"))
                streamer = self._inputs.setdefault(item_id, InputStreamer())
                client_id = frame.tools.call_item(name, "", "", item_id)["id"]
                if kind.endswith(".delta"):
                    text = streamer.feed(event.get("delta") or "")
                    if not text:
                        return []
                    return self._out({"type": "response.custom_tool_call_input.delta", "item_id": client_id,
                                      "output_index": event.get("output_index"), "delta": text})
                whole = custom_input(event.get("arguments") or "")
                if not whole.startswith(streamer.streamed):
                    whole = streamer.streamed
                self._sent_inputs[item_id] = whole
                out = []
                if whole[len(streamer.streamed):]:
                    out += self._out({"type": "response.custom_tool_call_input.delta", "item_id": client_id,
                                      "output_index": event.get("output_index"),
                                      "delta": whole[len(streamer.streamed):]})
                out += self._out({"type": "response.custom_tool_call_input.done", "item_id": client_id,
                                  "output_index": event.get("output_index"), "input": whole})
                return out
            return []  # a shell action, streamed: not the client's shape (the item's done event has it)
        if kind == "error":
            return self._out(event)
        return self._out(event)

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        if self._done:
            return []
        self._done = True
        failed = self.frame.response("failed", [], None, error={"code": failure_code(code), "message": message})
        return self._out({"type": "response.failed", "response": failed})

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        return self.fail("server_error", "the upstream stream ended before the response was complete")


# ---------------------------------------------------------------------------------------------------------
# The IR directions: clients of other dialects on a model that speaks only the Responses API


def _text_parts(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _input_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "input_text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
        elif kind == "file":
            file = part.get("file") or {}
            parts.append({"type": "input_file", "file_data": file.get("file_data"),
                          "filename": file.get("filename") or "document.pdf"})
    return parts


def chat_to_responses(chat: dict[str, Any], *, model: str, reasoning_model: bool) -> dict[str, Any]:
    """
    A Chat Completions body (as L{ir_request_to_chat} makes it from the IR) as a Responses body for a GPT
    deployment: system and developer messages as C{instructions}, the rest as input items.
    """
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for message in chat.get("messages") or ():
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_parts(content)
            if text:
                instructions.append(text)
        elif role == "user":
            items.append({"role": "user", "content": _input_parts(content)})
        elif role == "assistant":
            text = _text_parts(content)
            if text:
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text, "annotations": []}]})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"), "name": function.get("name"),
                              "arguments": function.get("arguments") or "{}"})
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": content if isinstance(content, str) else _text_parts(content)})
    body: dict[str, Any] = {"model": model, "input": items, "store": False}
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    tools = [{"type": "function", **{k: v for k, v in (t.get("function") or {}).items()}}
             for t in chat.get("tools") or () if t.get("type") == "function"]
    if tools:
        body["tools"] = tools
        choice = chat.get("tool_choice")
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            body["tool_choice"] = {"type": "function", "name": choice["function"].get("name")}
        elif isinstance(choice, str):
            body["tool_choice"] = choice
        if chat.get("parallel_tool_calls") is False:
            body["parallel_tool_calls"] = False
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if isinstance(limit, int):
        body["max_output_tokens"] = limit
    for key in ("temperature", "top_p", "user"):
        if chat.get(key) is not None:
            body[key] = chat[key]
    if reasoning_model:
        effort = chat.get("reasoning_effort")
        body["reasoning"] = {"effort": effort, "summary": "auto"} if effort else {"summary": "auto"}
        body["include"] = ["reasoning.encrypted_content"]
        for key in ("temperature", "top_p"):
            body.pop(key, None)
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        spec = fmt["json_schema"]
        body["text"] = {"format": {"type": "json_schema", "name": spec.get("name") or "response",
                                   "schema": spec.get("schema") or {}, **({"strict": spec["strict"]}
                                                                        if "strict" in spec else {})}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        body["text"] = {"format": {"type": "json_object"}}
    if chat.get("stream"):
        body["stream"] = True
    return body


def _stop_reason(response: dict[str, Any], called: bool) -> str:
    details = response.get("incomplete_details")
    if response.get("status") == "incomplete" and isinstance(details, dict):
        return "max_tokens" if details.get("reason") == "max_output_tokens" else "refusal"
    return "tool_use" if called else "end_turn"


def responses_to_ir_message(response: dict[str, Any], model: str) -> IRResponse:
    """A whole Responses API response as an IR message (reasoning as thinking, its encrypted content the signature)."""
    content: list[Any] = []
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    content.append({"type": "text", "text": part.get("text") or ""})
                elif part.get("type") == "refusal":
                    content.append({"type": "text", "text": part.get("refusal") or ""})
        elif kind == "reasoning":
            text = "".join(p.get("text") or "" for p in item.get("summary") or ())
            content.append({"type": "thinking", "thinking": text, "signature": item.get("encrypted_content") or ""})
        elif kind == "function_call":
            try:
                arguments = json.loads(item.get("arguments") or "{}")
            except ValueError:
                arguments = {}
            content.append({"type": "tool_use", "id": item.get("call_id") or item.get("id") or "",
                            "name": item.get("name") or "", "input": arguments if isinstance(arguments, dict) else {}})
    usage = usage_from_responses(response.get("usage")) or Usage()
    called = any(block["type"] == "tool_use" for block in content)
    return cast(IRResponse, {"id": "msg_" + str(response.get("id") or "")[5:], "type": "message",
                             "role": "assistant", "model": model, "content": content,
                             "stop_reason": _stop_reason(response, called), "stop_sequence": None,
                             "usage": usage.to_anthropic()})


class ResponsesToIRStream:
    """
    A Responses API stream in, IR (Anthropic) stream events out, through the one event writer: each output
    item one content block (message text, reasoning summary as thinking with its encrypted content as the
    signature, a function call as tool_use), the terminal event the stop reason and usage, a failure an error.
    """

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Usage | None = None
        self._writer = AnthropicStreamWriter()
        self._called = False

    def _begin(self, out: list[Any]) -> None:
        if not self._writer.started:
            self._writer.start(out, self.message_id, self.model)

    def feed(self, event: dict[str, Any]) -> list[Any]:
        writer = self._writer
        if writer.ended or not isinstance(event, dict):
            return []
        out: list[Any] = []
        kind = event.get("type")
        if kind == "response.output_text.delta":
            if writer.open_type == "text" and isinstance(event.get("delta"), str) and event["delta"]:
                writer.text(out, event["delta"])
            return out
        if kind == "response.function_call_arguments.delta":
            if writer.open_type == "tool_use" and isinstance(event.get("delta"), str) and event["delta"]:
                writer.delta(out, {"type": "input_json_delta", "partial_json": event["delta"]})
            return out
        if kind == "response.reasoning_summary_text.delta":
            if writer.open_type == "thinking" and isinstance(event.get("delta"), str) and event["delta"]:
                writer.delta(out, {"type": "thinking_delta", "thinking": event["delta"]})
            return out
        if kind in ("response.created", "response.in_progress"):
            self._begin(out)
            return out
        if kind == "response.output_item.added":
            self._begin(out)
            item = event.get("item") or {}
            if item.get("type") == "message":
                writer.open(out, {"type": "text", "text": ""})
            elif item.get("type") == "reasoning":
                writer.open(out, {"type": "thinking", "thinking": "", "signature": ""})
            elif item.get("type") == "function_call":
                self._called = True
                writer.open(out, {"type": "tool_use", "id": item.get("call_id") or "", "name": item.get("name") or "",
                                  "input": {}})
            return out
        if kind == "response.output_item.done":
            item = event.get("item") or {}
            if item.get("type") == "reasoning" and writer.open_type == "thinking" and item.get("encrypted_content"):
                writer.delta(out, {"type": "signature_delta", "signature": item["encrypted_content"]})
            writer.close(out)
            return out
        if kind in ("response.completed", "response.incomplete"):
            self._begin(out)
            response = event.get("response") or {}
            self.usage = usage_from_responses(response.get("usage")) or self.usage
            writer.finish(out, _stop_reason(response, self._called),
                          cast(Any, (self.usage or Usage()).to_anthropic()))
            return out
        if kind in ("response.failed", "error"):
            error = (event.get("response") or {}).get("error") if kind == "response.failed" else event.get("error")
            message = error.get("message") if isinstance(error, dict) else event.get("message")
            writer.fail(out, {"type": "error", "error": {"type": "api_error",
                                                         "message": str(message or "the upstream failed")}})
            return out
        return out

    def finish(self) -> list[Any]:
        return []


@implementer(IWireFormat)
class OpenAIResponsesWire(NoEmbeddings):
    """
    The Responses API as AI Core's GPT deployments serve it (L{sapproxy.interfaces.IWireFormat}).

    A provider offers it beside C{openai_chat} for GPT models, and the plan prefers it for a client that
    speaks the Responses API itself (L{passthrough}); for a model configured as Responses-only (C{models.X.
    responses_only}, e.g. Azure's codex models) it is the model's one format, and clients of other dialects
    come through the IR (L{request}, L{ResponsesToIRStream}, L{responses_to_ir_message}).
    """

    name = "openai_responses"
    fit_kind = "openai"
    input_tokens_at_end = True
    dialect_of = "openai_responses"

    def request(self, request: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        chat = ir_request_to_chat(request, reasoning_model=target.reasoning)
        chat["stream"] = stream
        body = chat_to_responses(chat, model=target.model, reasoning_model=target.reasoning)
        return WireRequest("responses", json_text(body), stream)

    def passthrough(self, call: Any, target: WireTarget) -> WireRequest:
        body = gpt_request(call.body, call.tools, model=target.model, reasoning_model=target.reasoning,
                           history=call.history)
        return WireRequest("responses", json_text(body), call.stream)

    def stream_source(self, content_type: str) -> Any:
        return SSEJsonSource()

    def stream_to_ir(self, model: str, message_id: str) -> list[Any]:
        return [ResponsesToIRStream(model, message_id)]

    def passthrough_stream(self, call: Any) -> list[Any]:
        translator = ResponsesPassthrough(call.frame)
        call.translators.append(translator)
        return [translator]

    def response_to_ir(self, response: dict[str, Any], model: str) -> IRResponse:
        return responses_to_ir_message(response, model)

    def passthrough_response(self, response: dict[str, Any], call: Any) -> dict[str, Any]:
        full = native_response(response, call.frame)
        call.finals.append(full)
        return client_view(full, call.frame)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return usage_from_responses(response.get("usage"))


WIRE_FORMAT = OpenAIResponsesWire()
