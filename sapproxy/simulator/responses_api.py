"""
The Responses API of AI Core's GPT deployments: C{POST {deploymentUrl}/responses?api-version=...}, streamed and not.

As strict as AI Core: only C{function} tools (custom, namespace, local_shell, web_search ... are refused with a
400 naming the offending tool), only input items a GPT deployment knows, every C{function_call_output} after
its call, encrypted reasoning that is not the deployment's own refused, C{previous_response_id} refused (this
simulator keeps nothing, as with C{store: false}), encrypted reasoning asked of a model that has none refused.

Replies follow the other handlers': a tool call when function tools are offered and the input does not end
with a tool's output (the arguments from the tool's schema, or from the directive's C{tool_args}), otherwise
the echo text; a reasoning model first emits a reasoning item (its summary when C{reasoning.summary} is set,
its encrypted content when C{include} asks).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .call import Call
from .openai_api import _check_api_version, _model_version, azure_error, is_reasoning
from .replies import JsonReply, Reply, StreamReply
from .textgen import count_prompt_tokens, count_reply_tokens, count_tokens, json_fragments, reply_piece, stable_id, \
    thinking_text, tool_arguments_json

MIN_RESPONSES_API_VERSION = "2025-03-01-preview"
REASONING_TOKENS = 64
_ENCRYPTED_PREFIX = "gAAAAB"
_ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "item_reference")
_ROLES = ("user", "assistant", "system", "developer")


def _sse(obj: dict[str, Any]) -> bytes:
    return (b"event: " + obj["type"].encode() + b"\ndata: " + json.dumps(obj, separators=(",", ":")).encode("utf-8")
            + b"\n\n")


def _encrypted(seed: str) -> str:
    """Opaque reasoning the simulator can recognise as its own: base64 with a checksum."""
    digest = hashlib.sha256(seed.encode()).digest()
    return _ENCRYPTED_PREFIX + base64.urlsafe_b64encode(digest + hashlib.sha256(digest).digest()[:4]).decode()


def _is_own_encrypted(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith(_ENCRYPTED_PREFIX):
        return False
    try:
        raw = base64.urlsafe_b64decode(value[len(_ENCRYPTED_PREFIX):])
    except ValueError:
        return False
    return len(raw) == 36 and hashlib.sha256(raw[:32]).digest()[:4] == raw[32:]


def _items(body: Mapping[str, Any]) -> list[Any]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return value if isinstance(value, list) else []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ""


def user_text(body: Any) -> str:
    """The last user message's text (a string input is one)."""
    if not isinstance(body, Mapping):
        return ""
    for item in reversed(_items(body)):
        if isinstance(item, Mapping) and item.get("role") == "user" and item.get("type", "message") == "message":
            return _text(item.get("content"))
    return ""


def validate(call: Call) -> JsonReply | None:
    body = call.body
    if not isinstance(body, Mapping):
        return azure_error(400, "We could not parse the JSON body of your request.", code="invalid_json")
    version = call.query.get("api-version") or ""
    if version and version[:10] < MIN_RESPONSES_API_VERSION[:10]:
        return azure_error(400, f"Azure OpenAI Responses API is enabled only for api-version "
                                f"{MIN_RESPONSES_API_VERSION} and later", code="BadRequest")
    if "input" not in body:
        return azure_error(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if body.get("previous_response_id") is not None:
        return azure_error(400, "previous_response_id is not supported for this deployment (responses are not "
                                "stored).", param="previous_response_id", code="unsupported_parameter")
    if body.get("store") not in (None, False):
        return azure_error(400, "Unsupported value: 'store' must be false for this deployment.", param="store",
                           code="unsupported_value")
    for key in ("reasoning", "text"):
        if body.get(key) is not None and not isinstance(body[key], Mapping):
            return azure_error(400, f"Invalid type for '{key}': expected an object.", param=key, code="invalid_type")
    include = body.get("include") or []
    if not isinstance(include, list):
        return azure_error(400, "Invalid type for 'include': expected an array.", param="include", code="invalid_type")
    if "reasoning.encrypted_content" in include and not is_reasoning(call.spec.model):
        return azure_error(400, "Encrypted content is not supported with this model.", param="include",
                           code="invalid_value")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return azure_error(400, "Invalid type for 'tools': expected an array.", param="tools", code="invalid_type")
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if kind != "function":
                return azure_error(400, f"Invalid value: '{kind}'. Supported values are: 'function'.",
                                   param=f"tools[{i}].type", code="invalid_value")
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                return azure_error(400, f"Missing required parameter: 'tools[{i}].name'.", param=f"tools[{i}].name",
                                   code="missing_required_parameter")
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") not in ("function", "allowed_tools"):
        return azure_error(400, f"Invalid value: '{choice.get('type')}'. Supported values are: 'function' and "
                                "'allowed_tools'.", param="tool_choice.type", code="invalid_value")
    model = call.spec.model
    if not is_reasoning(model) and body.get("reasoning") is not None:
        return azure_error(400, "Unsupported parameter: 'reasoning' is not supported with this model.",
                           param="reasoning", code="unsupported_parameter")
    if is_reasoning(model):
        for key in ("temperature", "top_p"):
            if body.get(key) not in (None, 1, 1.0):
                return azure_error(400, f"Unsupported parameter: '{key}' is not supported with this model.",
                                   param=key, code="unsupported_parameter")
    calls: set[str] = set()
    answered = {str(i.get("call_id")) for i in _items(body)
                if isinstance(i, Mapping) and i.get("type") == "function_call_output"}
    for i, item in enumerate(_items(body)):
        if not isinstance(item, Mapping):
            return azure_error(400, f"Invalid type for 'input[{i}]': expected an object.", param=f"input[{i}]",
                               code="invalid_type")
        kind = item.get("type", "message")
        if kind not in _ITEM_TYPES:
            return azure_error(400, f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                                    "'function_call_output', 'reasoning' and 'item_reference'.",
                               param=f"input[{i}].type", code="invalid_value")
        if kind == "message" and item.get("role") not in _ROLES:
            return azure_error(400, f"Invalid value: '{item.get('role')}'.", param=f"input[{i}].role",
                               code="invalid_value")
        if kind == "function_call":
            calls.add(str(item.get("call_id")))
            if str(item.get("call_id")) not in answered:
                return azure_error(400, f"No tool output found for function call {item.get('call_id')}.",
                                   param="input", code=None)
        if kind == "function_call_output" and str(item.get("call_id")) not in calls:
            return azure_error(400, f"No tool call found for function call output with call_id "
                                    f"{item.get('call_id')}.", param="input", code=None)
        if kind == "reasoning" and item.get("encrypted_content") is not None \
                and not _is_own_encrypted(item["encrypted_content"]):
            return azure_error(400, "The encrypted content for item could not be verified.", param="input",
                               code="invalid_encrypted_content")
        if kind == "item_reference":
            return azure_error(400, f"Item with id '{item.get('id')}' not found.", param="input", code=None)
    return None


def _tool_args(call: Call, tool: Mapping[str, Any]) -> str:
    wanted = call.directive.tool_args
    if wanted is not None:
        return wanted
    return tool_arguments_json(tool.get("parameters"))


def _tools_to_call(call: Call) -> list[Mapping[str, Any]]:
    body = call.body
    tools = [t for t in body.get("tools") or () if isinstance(t, Mapping)]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return []
    items = _items(body)
    if items and isinstance(items[-1], Mapping) and items[-1].get("type") == "function_call_output":
        return []
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        tools = [t for t in tools if t.get("name") == choice.get("name")] or tools
    name = call.directive.tool_name
    if name is not None:
        tools = [t for t in tools if t.get("name") == name] or tools
    n = call.directive.tool_calls if call.directive.tool_calls is not None else 1
    if n > 1 and body.get("parallel_tool_calls") is False:
        n = 1
    return [tools[i % len(tools)] for i in range(n)]


def _reply_text(call: Call) -> str:
    items = _items(call.body)
    if items and isinstance(items[-1], Mapping) and items[-1].get("type") == "function_call_output":
        output = items[-1].get("output")
        return "tool said " + (_text(output) if not isinstance(output, str) else output)
    return call.user_text


def responses(call: Call) -> Reply:
    error = _check_api_version(call) or validate(call)
    if error is not None:
        return error
    body = call.body
    directive = call.directive
    model = _model_version(call.spec.model)
    reasoning = is_reasoning(call.spec.model)
    include_encrypted = "reasoning.encrypted_content" in (body.get("include") or [])
    summary_wanted = isinstance(body.get("reasoning"), Mapping) and body["reasoning"].get("summary") is not None
    seed = f"{call.seq}:{json.dumps(body, sort_keys=True)[:2000]}"
    response_id = stable_id("resp_", seed, 48)
    created = int(call.now)
    tools = _tools_to_call(call)
    text = _reply_text(call)
    incomplete = directive.stop == "max_tokens" and not tools

    output: list[dict[str, Any]] = []
    if reasoning:
        item: dict[str, Any] = {"id": stable_id("rs_", seed, 48), "type": "reasoning", "summary": []}
        if summary_wanted:
            item["summary"] = [{"type": "summary_text", "text": thinking_text(call.user_text)}]
        if include_encrypted:
            item["encrypted_content"] = _encrypted(seed)
        output.append(item)
    if tools:
        for i, tool in enumerate(tools):
            output.append({"id": stable_id("fc_", f"{seed}:{i}", 48), "type": "function_call", "status": "completed",
                           "arguments": _tool_args(call, tool), "call_id": stable_id("call_", f"{seed}:{i}", 24),
                           "name": tool["name"]})
    else:
        pieces = [reply_piece(text, directive, i) for i in range(directive.events)]
        output.append({"id": stable_id("msg_", seed, 48), "type": "message", "status": "incomplete" if incomplete
                       else "completed", "role": "assistant",
                       "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "".join(pieces)}]})
    prompt = count_prompt_tokens(body.get("input")) + count_prompt_tokens(body.get("instructions"))
    completion = (sum(count_tokens(o["arguments"]) + 5 for o in output if o["type"] == "function_call")
                  or count_reply_tokens(text, directive)) + (REASONING_TOKENS if reasoning else 0)
    usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
             "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS if reasoning else 0},
             "total_tokens": prompt + completion}

    def response(status: str, out: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
        return {
            "id": response_id, "object": "response", "created_at": created, "status": status, "background": False,
            "content_filters": None, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model, "output": out, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort") if reasoning else None,
                          "summary": (body.get("reasoning") or {}).get("summary")},
            "store": False, "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "usage": (usage if not directive.no_usage else None) if with_usage else None,
            "user": body.get("user"), "metadata": {},
        }

    final_status = "incomplete" if incomplete else "completed"
    if not body.get("stream"):
        return JsonReply(200, response(final_status, output, True))

    def events() -> Iterator[bytes]:
        seq = 0

        def ev(obj: dict[str, Any]) -> bytes:
            nonlocal seq
            obj["sequence_number"] = seq
            seq += 1
            return _sse(obj)

        yield ev({"type": "response.created", "response": response("in_progress", [], False)})
        yield ev({"type": "response.in_progress", "response": response("in_progress", [], False)})
        for index, item in enumerate(output):
            kind = item["type"]
            if kind == "reasoning":
                yield ev({"type": "response.output_item.added", "output_index": index,
                          "item": {"id": item["id"], "type": "reasoning", "summary": []}})
                for s, part in enumerate(item["summary"]):
                    base = {"item_id": item["id"], "output_index": index, "summary_index": s}
                    yield ev({"type": "response.reasoning_summary_part.added", **base,
                              "part": {"type": "summary_text", "text": ""}})
                    for fragment in json_fragments(part["text"]):
                        yield ev({"type": "response.reasoning_summary_text.delta", **base, "delta": fragment})
                    yield ev({"type": "response.reasoning_summary_text.done", **base, "text": part["text"]})
                    yield ev({"type": "response.reasoning_summary_part.done", **base, "part": part})
            elif kind == "function_call":
                yield ev({"type": "response.output_item.added", "output_index": index,
                          "item": dict(item, status="in_progress", arguments="")})
                for fragment in json_fragments(item["arguments"]):
                    yield ev({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                              "output_index": index, "delta": fragment})
                yield ev({"type": "response.function_call_arguments.done", "item_id": item["id"],
                          "output_index": index, "arguments": item["arguments"]})
            else:
                base = {"item_id": item["id"], "output_index": index, "content_index": 0}
                yield ev({"type": "response.output_item.added", "output_index": index,
                          "item": dict(item, status="in_progress", content=[])})
                yield ev({"type": "response.content_part.added", **base,
                          "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
                for i in range(directive.events):
                    yield ev({"type": "response.output_text.delta", **base, "delta": reply_piece(text, directive, i),
                              "logprobs": []})
                part = item["content"][0]
                yield ev({"type": "response.output_text.done", **base, "text": part["text"], "logprobs": []})
                yield ev({"type": "response.content_part.done", **base, "part": part})
            yield ev({"type": "response.output_item.done", "output_index": index, "item": item})
        yield ev({"type": "response." + final_status, "response": response(final_status, output, True)})

    def error_event() -> bytes:
        return _sse({"type": "error", "sequence_number": 0, "error": {
            "type": "server_error", "code": "server_error",
            "message": "The server had an error while processing your request. Sorry about that!", "param": None}})

    return StreamReply("text/event-stream; charset=utf-8", events(), error_event)
