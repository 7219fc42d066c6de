"""
The Azure OpenAI dialect AI Core serves for C{kind=openai}: chat completions and embeddings.

Shapes follow Azure's (prompt/content filter results, the leading C{choices: []} stream chunk with empty
id/model, the usage chunk only with C{stream_options.include_usage}) rather than api.openai.com's.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterator, Mapping
from typing import Any

from . import model_rules
from .call import Call
from .replies import JsonReply, Reply, StreamReply, sse_data
from .shape import NUMBER, check
from .textgen import (
    count_prompt_tokens, count_reply_tokens, count_tokens, json_fragments, reply_piece, stable_id,
    tool_arguments_json,
)

REASONING_PREFIXES = ("gpt-5", "o1", "o3", "o4")
MIN_REASONING_API_VERSION = "2024-12-01-preview"
#: The first api-version whose chat completions accept each request field; an older version answers Azure's
#: "Unrecognized request argument supplied" 400 (2023-05-15, for one, predates all of them).
FIELD_SINCE = {
    "tools": "2023-12-01-preview",
    "tool_choice": "2023-12-01-preview",
    "parallel_tool_calls": "2024-07-01-preview",
    "stream_options": "2024-09-01-preview",
    "max_completion_tokens": "2024-09-01-preview",
}
JSON_SCHEMA_SINCE = "2024-08-01-preview"
VALID_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
#: Azure reports dated model versions.
MODEL_VERSIONS = {
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4o": "gpt-4o-2024-11-20",
    "gpt-5": "gpt-5-2025-08-07",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
}
REASONING_TOKENS = 64

_SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": {
    "hate": _SAFE, "jailbreak": {"filtered": False, "detected": False}, "self_harm": _SAFE,
    "sexual": _SAFE, "violence": _SAFE}}]
CONTENT_FILTER = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
CONTENT_FILTER_FULL = {
    **CONTENT_FILTER,
    "protected_material_code": {"filtered": False, "detected": False},
    "protected_material_text": {"filtered": False, "detected": False},
}


_TEXT_PART = {"type": str, "text": str}
_MESSAGE = {
    "role": str, "content": (str, None, [_TEXT_PART]), "tool_call_id": str, "name": str,
    "tool_calls": [{"id": str, "type": str, "function": {"name": str, "arguments": str}}],
}
#: The JSON types of the chat fields the simulator reads.
CHAT_SPEC = {
    "messages": [_MESSAGE],
    "tools": [{"type": str, "function": {"name": str, "description": str, "parameters": dict}}],
    "tool_choice": (str, {"type": str, "function": {"name": str}}),
    "stream": bool, "stream_options": (None, {"include_usage": bool}), "parallel_tool_calls": bool,
    "max_tokens": (int, None), "max_completion_tokens": (int, None), "temperature": (NUMBER, None),
}


def is_reasoning(model: str) -> bool:
    return model.startswith(REASONING_PREFIXES)


def azure_error(status: int, message: str, *, code: str | None = None, param: str | None = None,
                type_: str = "invalid_request_error", headers: Mapping[str, str] | None = None) -> JsonReply:
    """Azure's error envelope, which always carries code, message, param and type."""
    return JsonReply(status, {"error": {"code": code, "message": message, "param": param, "type": type_}},
                     headers=dict(headers or {}))


def user_text(body: Any) -> str:
    """The text of the last C{user} message (string content or its text parts)."""
    if not isinstance(body, Mapping):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return _text_of(message.get("content"))
    inp = body.get("input")
    if isinstance(inp, str):
        return inp
    if isinstance(inp, list):  # the Responses API's input items
        from .responses_api import user_text as responses_user_text

        return responses_user_text(body)
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def handle(call: Call) -> Reply:
    if call.subpath == "chat/completions":
        return chat(call)
    if call.subpath == "embeddings":
        return embeddings(call)
    if call.subpath == "responses":
        from .responses_api import responses

        return responses(call)
    return azure_error(404, "Resource not found", code="404", type_="not_found")


def _check_api_version(call: Call) -> JsonReply | None:
    version = call.query.get("api-version")
    if not version:
        return azure_error(400, "The api-version query parameter (?api-version=) is required for all requests.",
                           code="MissingApiVersionParameter")
    if is_reasoning(call.spec.model) and version[:10] < MIN_REASONING_API_VERSION[:10]:
        return azure_error(400, f"Model {call.spec.model} is enabled only for api versions "
                                f"{MIN_REASONING_API_VERSION} and later", code="BadRequest")
    return None


def _fields_of_version(call: Call) -> JsonReply | None:
    """
    A field newer than the request's api-version: Azure does not know it and says so.
    """
    body = call.body
    version = (call.query.get("api-version") or "")[:10]
    if not isinstance(body, Mapping) or not version:
        return None
    for name, since in FIELD_SINCE.items():
        if name in body and version < since[:10]:
            return azure_error(400, f"Unrecognized request argument supplied: {name}")
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema" \
            and version < JSON_SCHEMA_SINCE[:10]:
        return azure_error(400, "Invalid value: 'json_schema'. Supported values are: 'json_object' and 'text'.",
                           param="response_format.type", code="invalid_value")
    return None


def validate_chat(call: Call) -> JsonReply | None:
    """Azure's 400s for the mistakes a translating proxy could make."""
    body = call.body
    if not isinstance(body, Mapping):
        return azure_error(400, "We could not parse the JSON body of your request.", code="invalid_json")
    too_new = _fields_of_version(call)
    if too_new is not None:
        return too_new
    messages = body.get("messages")
    if messages is None:
        return azure_error(400, "Missing required parameter: 'messages'.", param="messages",
                           code="missing_required_parameter")
    mismatch = check(body, CHAT_SPEC)
    if mismatch is not None:
        path, expected = mismatch
        return azure_error(400, f"Invalid type for '{path}': expected {expected}.", param=path,
                           code="invalid_type")
    if not isinstance(messages, list) or not messages:
        return azure_error(400, "[] is too short - 'messages'", param="messages", code="empty_array")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in VALID_ROLES:
            role = message.get("role") if isinstance(message, Mapping) else None
            return azure_error(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                                    "'user', 'function', 'tool', and 'developer'.",
                               param=f"messages[{i}].role", code="invalid_value")
        if message.get("role") == "tool" and not message.get("tool_call_id"):
            return azure_error(400, f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                               param=f"messages[{i}].tool_call_id", code="missing_required_parameter")
    model = call.spec.model
    if is_reasoning(model):
        if "max_tokens" in body:
            return azure_error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                    "Use 'max_completion_tokens' instead.",
                               param="max_tokens", code="unsupported_parameter")
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return azure_error(400, f"Unsupported value: 'temperature' does not support {temperature} with "
                                    "this model. Only the default (1) value is supported.",
                               param="temperature", code="unsupported_value")
    if "stream_options" in body and body.get("stream_options") is not None and not body.get("stream"):
        return azure_error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                           param="stream_options", code=None)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return azure_error(400, "Invalid type for 'tools': expected an array.", param="tools",
                               code="invalid_type")
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping) or tool.get("type") != "function" or not isinstance(
                    tool.get("function"), Mapping) or not tool["function"].get("name"):
                return azure_error(400, f"Missing required parameter: 'tools[{i}].function'.",
                                   param=f"tools[{i}].function", code="missing_required_parameter")
        refused = model_rules.openai_tool_errors(body)
        if refused is not None:
            return azure_error(400, refused[0], param=refused[1], code="invalid_value")
    return None


def _tool_calls_wanted(call: Call) -> list[Mapping[str, Any]]:
    """The function tools to call in this reply (empty for a text reply)."""
    body = call.body
    tools = [t for t in (body.get("tools") or []) if isinstance(t, Mapping) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return []
    last = body["messages"][-1]
    if isinstance(last, Mapping) and last.get("role") == "tool":
        return []
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        named = [t for t in tools if t["function"].get("name") == choice["function"].get("name")]
        tools = named or tools
    wanted = call.directive.tool_calls
    n = wanted if wanted is not None else 1
    if n > 1 and body.get("parallel_tool_calls") is False:
        n = 1
    return [tools[i % len(tools)] for i in range(n)]


def _tool_result_text(call: Call) -> str | None:
    last = call.body["messages"][-1]
    if isinstance(last, Mapping) and last.get("role") == "tool":
        return _text_of(last.get("content"))
    return None


def _effective_user_text(call: Call) -> str:
    tool_result = _tool_result_text(call)
    if tool_result is not None:
        return "tool said " + tool_result
    return call.user_text


def _model_version(model: str) -> str:
    return MODEL_VERSIONS.get(model, model)


def _usage(call: Call, completion: int) -> dict[str, Any]:
    prompt = count_prompt_tokens(call.body.get("messages"))
    reasoning = REASONING_TOKENS if is_reasoning(call.spec.model) else 0
    completion += reasoning
    return {
        "completion_tokens": completion,
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0,
                                      "reasoning_tokens": reasoning, "rejected_prediction_tokens": 0},
        "prompt_tokens": prompt,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _finish_reason(call: Call, tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    if call.directive.stop == "max_tokens":
        return "length"
    return "stop"


def _tool_call_id(call: Call, i: int) -> str:
    return stable_id("call_", f"{call.seq}:{i}", 24)


def chat(call: Call) -> Reply:
    error = _check_api_version(call) or validate_chat(call)
    if error is not None:
        return error
    tools = _tool_calls_wanted(call)
    text = _effective_user_text(call)
    directive = call.directive
    completion_id = stable_id("chatcmpl-", f"{call.seq}:{call.body!r}", 29)
    created = int(call.now)
    model = _model_version(call.spec.model)
    fingerprint = None if is_reasoning(call.spec.model) else "fp_" + hashlib.sha1(model.encode()).hexdigest()[:10]
    if tools:
        completion_tokens = sum(count_tokens(tool_arguments_json(t["function"].get("parameters"))) + 5
                                for t in tools)
    else:
        completion_tokens = count_reply_tokens(text, directive)
    usage = _usage(call, completion_tokens)

    if not call.body.get("stream"):
        message: dict[str, Any] = {"annotations": [], "content": None, "refusal": None, "role": "assistant"}
        if tools:
            message["tool_calls"] = [
                {"function": {"arguments": tool_arguments_json(t["function"].get("parameters")),
                              "name": t["function"]["name"]},
                 "id": _tool_call_id(call, i), "type": "function"}
                for i, t in enumerate(tools)]
        else:
            message["content"] = "".join(reply_piece(text, directive, i) for i in range(directive.events))
        body: dict[str, Any] = {
            "choices": [{"content_filter_results": {} if tools else CONTENT_FILTER_FULL,
                         "finish_reason": _finish_reason(call, bool(tools)), "index": 0,
                         "logprobs": None, "message": message}],
            "created": created, "id": completion_id, "model": model, "object": "chat.completion",
            "prompt_filter_results": PROMPT_FILTER, "system_fingerprint": fingerprint,
        }
        if not directive.no_usage:
            body["usage"] = usage
        return JsonReply(200, body)

    include_usage = bool((call.body.get("stream_options") or {}).get("include_usage")) and not directive.no_usage

    def chunk(choices: list[Any], usage_value: Any = None) -> bytes:
        return sse_data({"choices": choices, "created": created, "id": completion_id, "model": model,
                         "object": "chat.completion.chunk", "system_fingerprint": fingerprint,
                         "usage": usage_value})

    def events() -> Iterator[bytes]:
        yield sse_data({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                        "prompt_filter_results": PROMPT_FILTER})
        yield chunk([{"content_filter_results": {}, "delta": {"content": "", "refusal": None,
                                                              "role": "assistant"},
                      "finish_reason": None, "index": 0, "logprobs": None}])
        if tools:
            for i, tool in enumerate(tools):
                fn = tool["function"]
                yield chunk([{"content_filter_results": {}, "delta": {"tool_calls": [
                    {"function": {"arguments": "", "name": fn["name"]}, "id": _tool_call_id(call, i),
                     "index": i, "type": "function"}]}, "finish_reason": None, "index": 0, "logprobs": None}])
                for fragment in json_fragments(tool_arguments_json(fn.get("parameters"))):
                    yield chunk([{"content_filter_results": {}, "delta": {"tool_calls": [
                        {"function": {"arguments": fragment}, "index": i}]},
                        "finish_reason": None, "index": 0, "logprobs": None}])
        else:
            for i in range(directive.events):
                yield chunk([{"content_filter_results": CONTENT_FILTER,
                              "delta": {"content": reply_piece(text, directive, i)},
                              "finish_reason": None, "index": 0, "logprobs": None}])
        yield chunk([{"content_filter_results": {}, "delta": {},
                      "finish_reason": _finish_reason(call, bool(tools)), "index": 0, "logprobs": None}])
        if include_usage:
            yield chunk([], usage)
        yield b"data: [DONE]\n\n"

    def error_event() -> bytes:
        # What Azure sends when a stream fails after it started: an error object in a data event.
        return sse_data({"error": {"code": "server_error", "message": "The server had an error while "
                                   "processing your request. Sorry about that!", "param": None,
                                   "type": "server_error"}})

    return StreamReply("text/event-stream; charset=utf-8", events(), error_event)


def _embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit-ish vector from SHA-256 of the text, float32-exact so base64 round-trips."""
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode("utf-8")).digest()
        for j in range(0, len(digest), 4):
            value = (int.from_bytes(digest[j:j + 4], "little") / 0xFFFFFFFF) * 2 - 1
            out.append(struct.unpack("<f", struct.pack("<f", value / 8))[0])
        counter += 1
    return out[:dims]


def embeddings(call: Call) -> Reply:
    error = _check_api_version(call)
    if error is not None:
        return error
    body = call.body
    if not isinstance(body, Mapping) or "input" not in body:
        return azure_error(400, "Missing required parameter: 'input'.", param="input",
                           code="missing_required_parameter")
    inp = body["input"]
    inputs: list[str]
    if isinstance(inp, str):
        inputs = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
        inputs = list(inp)
    else:
        return azure_error(400, "'$.input' is invalid. Please check the API reference: "
                                "https://platform.openai.com/docs/api-reference.", param=None, code=None)
    if any(x == "" for x in inputs):
        return azure_error(400, "'$.input' is invalid. Please check the API reference: "
                                "https://platform.openai.com/docs/api-reference.", param=None, code=None)
    dims = body.get("dimensions", 8)
    if not isinstance(dims, int) or dims < 1 or dims > 1536:
        return azure_error(400, "Invalid value for 'dimensions'.", param="dimensions", code="invalid_value")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return azure_error(400, f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                           param="encoding_format", code="invalid_value")
    data = []
    for i, text in enumerate(inputs):
        vector = _embedding(text, dims)
        embedding: Any = vector
        if fmt == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"embedding": embedding, "index": i, "object": "embedding"})
    tokens = sum(max(1, count_tokens(t)) for t in inputs)
    return JsonReply(200, {"data": data, "model": call.spec.model, "object": "list",
                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def throttle_body(retry_after: int) -> dict[str, Any]:
    return {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure "
                      "OpenAI API version 2024-12-01-preview have exceeded token rate limit of your current "
                      f"OpenAI S0 pricing tier. Please retry after {retry_after} second"
                      f"{'' if retry_after == 1 else 's'}."}}


def server_error_body(status: int) -> dict[str, Any]:
    if status == 503:
        return {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unable to "
                          "process your request. Please try again later."}}
    return {"error": {"code": "InternalServerError", "message": "The server had an error while processing "
                      "your request. Sorry about that!"}}


