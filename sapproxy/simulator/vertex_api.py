"""
Vertex AI's Gemini C{generateContent} and C{streamGenerateContent?alt=sse} (C{kind=vertex}).

Google rejects unknown JSON fields ("Unknown name ... Cannot find field.") with 400 INVALID_ARGUMENT, so a
translating proxy that leaks an OpenAI or Anthropic field is caught here. Streams are C{data:} lines with
CRLF line ends, no event names and no C{[DONE]}.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from . import model_rules
from .call import Call
from .plan import Block, ToolSpec, make_plan
from .replies import JsonReply, Reply, StreamReply
from .shape import ANY, NUMBER, check, with_snake_case
from .textgen import count_prompt_tokens, stable_id, thinking_signature

REQUEST_FIELDS = {
    "contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
    "safetySettings", "safety_settings", "generationConfig", "generation_config", "cachedContent",
    "cached_content", "labels", "model",
}
GENERATION_FIELDS = {
    "temperature", "topP", "top_p", "topK", "top_k", "candidateCount", "candidate_count", "maxOutputTokens",
    "max_output_tokens", "stopSequences", "stop_sequences", "responseMimeType", "response_mime_type",
    "responseSchema", "response_schema", "responseJsonSchema", "response_json_schema", "presencePenalty",
    "presence_penalty", "frequencyPenalty", "frequency_penalty", "seed", "responseLogprobs", "response_logprobs",
    "logprobs", "thinkingConfig", "thinking_config", "responseModalities", "response_modalities",
    "mediaResolution", "media_resolution", "speechConfig", "speech_config", "audioTimestamp", "audio_timestamp",
    "routingConfig", "routing_config",
}
THINKING_FIELDS = {"thinkingBudget", "thinking_budget", "includeThoughts", "include_thoughts", "thinkingLevel",
                   "thinking_level"}
PART_FIELDS = {
    "text", "inlineData", "inline_data", "fileData", "file_data", "functionCall", "function_call",
    "functionResponse", "function_response", "thought", "thoughtSignature", "thought_signature",
    "executableCode", "executable_code", "codeExecutionResult", "code_execution_result", "videoMetadata",
    "video_metadata",
}
CONTENT_FIELDS = {"role", "parts"}
TOOL_FIELDS = {"functionDeclarations", "function_declarations", "googleSearch", "google_search",
               "googleSearchRetrieval", "google_search_retrieval", "codeExecution", "code_execution", "retrieval",
               "urlContext", "url_context"}
DECLARATION_FIELDS = {"name", "description", "parameters", "parametersJsonSchema", "parameters_json_schema",
                      "response", "responseJsonSchema"}
_PART = {
    "text": str, "thought": bool, "thoughtSignature": str, "inlineData": {"mimeType": str, "data": str},
    "fileData": {"mimeType": str, "fileUri": str}, "functionCall": {"name": str, "args": dict, "id": str},
    "functionResponse": {"name": str, "response": dict, "id": str},
}
_CONTENT = {"role": str, "parts": [_PART]}
#: The JSON types of the fields the simulator reads (camelCase and snake_case alike).
BODY_SPEC = with_snake_case({
    "contents": [_CONTENT], "systemInstruction": _CONTENT,
    "tools": [{"functionDeclarations": [{"name": str, "description": str, "parameters": dict,
                                          "parametersJsonSchema": dict}]}],
    "toolConfig": {"functionCallingConfig": {"mode": str, "allowedFunctionNames": [str]}},
    "generationConfig": {"maxOutputTokens": int, "temperature": NUMBER, "topP": NUMBER, "topK": NUMBER,
                         "stopSequences": [str], "responseMimeType": str, "responseSchema": dict,
                         "seed": int, "presencePenalty": NUMBER, "frequencyPenalty": NUMBER,
                         "thinkingConfig": {"thinkingBudget": int, "includeThoughts": bool}},
    "labels": ANY,
})
_TYPE_NAMES = {"string": "TYPE_STRING", "integer": "TYPE_INT32", "number": "TYPE_FLOAT", "boolean": "TYPE_BOOL"}
#: Tokens a Gemini 2.5 model "thinks" by default even when thoughts are not returned.
DEFAULT_THOUGHT_TOKENS = 32


def _get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def invalid_argument(message: str) -> JsonReply:
    """Google's 400: C{{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT"}}}."""
    return JsonReply(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})


def status_error(status: int, headers: Mapping[str, str]) -> JsonReply:
    known = {
        429: ("RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later. Please refer to "
                                    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more "
                                    "details."),
        500: ("INTERNAL", "Internal error encountered."),
        503: ("UNAVAILABLE", "The service is currently unavailable."),
    }
    code, message = known.get(status, known[500])
    return JsonReply(status, {"error": {"code": status, "message": message, "status": code}}, headers=headers)


def _unknown(name: str, where: str | None) -> JsonReply:
    at = f" at '{where}'" if where else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    return JsonReply(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": [
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": where or "", "description": message}]}]}})


def _check_fields(value: Any, allowed: set[str], where: str | None) -> JsonReply | None:
    if isinstance(value, Mapping):
        for key in value:
            if key not in allowed:
                return _unknown(key, where)
    return None


def validate(body: Any) -> JsonReply | None:
    if not isinstance(body, Mapping):
        return invalid_argument("Invalid JSON payload received. Expected an object.")
    error = _check_fields(body, REQUEST_FIELDS, None)
    if error:
        return error
    mismatch = check(body, BODY_SPEC)
    if mismatch is not None:
        path, expected = mismatch
        return invalid_argument(f"Invalid value at '{path}' ({_TYPE_NAMES.get(expected, expected)})")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return invalid_argument("Unable to submit request because it must include at least one parts field, "
                                "which describes the prompt input. Learn more: "
                                "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini")
    for i, content in enumerate(contents):
        error = _check_fields(content, CONTENT_FIELDS, f"contents[{i}]")
        if error:
            return error
        if not isinstance(content, Mapping):
            return invalid_argument(f"Invalid value at 'contents[{i}]'")
        role = content.get("role", "user")
        if role not in ("user", "model", "function"):
            return invalid_argument("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return invalid_argument("Unable to submit request because it must include at least one parts field, "
                                    "which describes the prompt input. Learn more: "
                                    "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini")
        for j, part in enumerate(parts):
            error = _check_fields(part, PART_FIELDS, f"contents[{i}].parts[{j}]")
            if error:
                return error
            if isinstance(part, Mapping) and "text" in part and part["text"] == "" and not part.get(
                    "thoughtSignature") and len(part) == 1:
                return invalid_argument("Unable to submit request because it has an empty text parameter. Add a "
                                        "value to the parameter and try again. Learn more: "
                                        "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini")
    system = _get(body, "systemInstruction", "system_instruction")
    if system is not None:
        error = _check_fields(system, CONTENT_FIELDS, "system_instruction")
        if error:
            return error
    gen = _get(body, "generationConfig", "generation_config")
    if gen is not None:
        error = _check_fields(gen, GENERATION_FIELDS, "generation_config")
        if error:
            return error
        thinking = _get(gen, "thinkingConfig", "thinking_config")
        if thinking is not None:
            error = _check_fields(thinking, THINKING_FIELDS, "generation_config.thinking_config")
            if error:
                return error
    for i, tool in enumerate(body.get("tools") or []):
        error = _check_fields(tool, TOOL_FIELDS, f"tools[{i}]")
        if error:
            return error
        for j, decl in enumerate(_get(tool, "functionDeclarations", "function_declarations") or []):
            error = _check_fields(decl, DECLARATION_FIELDS, f"tools[{i}].function_declarations[{j}]")
            if error:
                return error
            if not decl.get("name"):
                return invalid_argument(f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                                        "[FIELD_INVALID] Invalid function name. Must start with a letter or an "
                                        "underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots and "
                                        "dashes, with a maximum length of 64.\n")
    return None


def user_text(body: Any) -> str:
    """The text parts of the last user content (thought parts excluded)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("contents"), list):
        return ""
    for content in reversed(body["contents"]):
        if isinstance(content, Mapping) and content.get("role", "user") == "user":
            parts = content.get("parts")
            parts = parts if isinstance(parts, list) else []
            return "".join(p["text"] for p in parts
                           if isinstance(p, Mapping) and isinstance(p.get("text"), str) and not p.get("thought"))
    return ""


def _function_response(body: Mapping[str, Any]) -> str | None:
    last = body["contents"][-1]
    responses = [_get(p, "functionResponse", "function_response") for p in last.get("parts", [])
                 if isinstance(p, Mapping)]
    responses = [r for r in responses if r is not None]
    if not responses:
        return None
    return " ".join(json.dumps(r.get("response", {}), separators=(",", ":")) for r in responses)


def _tools(body: Mapping[str, Any]) -> tuple[list[ToolSpec], str | None]:
    specs = []
    for tool in body.get("tools") or []:
        for decl in _get(tool, "functionDeclarations", "function_declarations") or []:
            schema = decl.get("parameters", _get(decl, "parametersJsonSchema", "parameters_json_schema")) or {}
            specs.append(ToolSpec(decl["name"], schema))
    config = _get(body, "toolConfig", "tool_config") or {}
    calling = _get(config, "functionCallingConfig", "function_calling_config") or {}
    mode = calling.get("mode", "AUTO")
    if mode == "NONE":
        return [], None
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
    return specs, (allowed[0] if allowed else None)


def handle(call: Call) -> Reply:
    model, _, method = call.subpath.removeprefix("models/").partition(":")
    if not call.subpath.startswith("models/") or method not in ("generateContent", "streamGenerateContent"):
        return JsonReply(404, {"error": {"code": 404, "message": "Method not found.", "status": "NOT_FOUND"}})
    if model != call.spec.model:
        return JsonReply(404, {"error": {"code": 404, "message": f"Publisher Model `{model}` was not found or your "
                                         "project does not have access to it.", "status": "NOT_FOUND"}})
    error = validate(call.body)
    if error is not None:
        return error
    body = call.body
    gen = _get(body, "generationConfig", "generation_config") or {}
    message = model_rules.gemini_errors(body, body.get("tools"), gen, call.spec.model)
    if message is not None:
        return invalid_argument(message)
    thinking_cfg = _get(gen, "thinkingConfig", "thinking_config") or {}
    budget = _get(thinking_cfg, "thinkingBudget", "thinking_budget")
    if budget == 0 and "pro" in call.spec.model:
        return invalid_argument("Budget 0 is invalid. This model only works in thinking mode.")
    include_thoughts = bool(_get(thinking_cfg, "includeThoughts", "include_thoughts"))
    thinks = budget != 0
    tools, forced = _tools(body)
    plan = make_plan(call.user_text, call.directive, thinking=include_thoughts, tools=tools, forced_tool=forced,
                     tool_result=_function_response(body),
                     stop_sequences=_get(gen, "stopSequences", "stop_sequences") or ())
    prompt = count_prompt_tokens({"c": body["contents"], "s": _get(body, "systemInstruction",
                                                                  "system_instruction")})
    thoughts = plan.thinking_tokens or (DEFAULT_THOUGHT_TOKENS if thinks else 0)
    candidates_tokens = plan.output_tokens - plan.thinking_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt, "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt + candidates_tokens + thoughts, "trafficType": "ON_DEMAND",
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": candidates_tokens}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    envelope = {
        "modelVersion": call.spec.model,
        "createTime": datetime.fromtimestamp(call.now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "responseId": stable_id("", f"{call.seq}:{call.deployment_id}", 22),
    }
    finish = "MAX_TOKENS" if plan.stop == "max_tokens" else "STOP"
    with_usage = not call.directive.no_usage
    signature = thinking_signature(call.user_text) if thinks else None
    if call.directive.stop == "malformed_function_call":
        # What Gemini answers when it could not write the tool call it meant: no content at all.
        failed = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL",
                                  "finishMessage": "Malformed function call: print(default_api.f(x=))"}],
                  **({"usageMetadata": usage} if with_usage else {}), **envelope}
        if method == "generateContent":
            return JsonReply(200, failed)
        return StreamReply("text/event-stream", iter([_sse(failed)]),
                           lambda: _sse({"error": {"code": 500, "message": "Internal error encountered.",
                                                   "status": "INTERNAL"}}))

    if method == "generateContent":
        parts = list(_parts(plan.blocks, signature, whole=True))
        response: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": parts},
                                                    "finishReason": finish}]}
        if with_usage:
            response["usageMetadata"] = usage
        return JsonReply(200, {**response, **envelope})

    if call.query.get("alt") != "sse":
        # Without alt=sse Google streams one JSON array; AI Core clients always ask for SSE.
        return invalid_argument("streamGenerateContent requires alt=sse on this gateway")

    def events() -> Iterator[bytes]:
        iterator = _parts(plan.blocks, signature, whole=False)
        pending = next(iterator, None)
        while pending is not None:
            following = next(iterator, None)
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [pending]}}
            chunk: dict[str, Any] = {"candidates": [candidate]}
            if following is None:
                candidate["finishReason"] = finish
                if with_usage:
                    chunk["usageMetadata"] = usage
            else:
                chunk["usageMetadata"] = {"trafficType": "ON_DEMAND"}
            yield _sse({**chunk, **envelope})
            pending = following

    def error_event() -> bytes:
        return _sse({"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}})

    return StreamReply("text/event-stream", events(), error_event)


def _parts(blocks: Sequence[Block], signature: str | None, *, whole: bool) -> Iterator[dict[str, Any]]:
    """Gemini parts of the plan: thought text, then function calls (the first signed) or text."""
    signed = False
    for block in blocks:
        if block.kind == "thinking":
            yield {"text": block.text, "thought": True}
        elif block.kind == "tool":
            part: dict[str, Any] = {"functionCall": {"name": block.tool_name, "args": json.loads(block.tool_args)}}
            if signature is not None and not signed:
                part["thoughtSignature"] = signature
                signed = True
            yield part
        elif whole:
            yield {"text": block.full_text()}
        else:
            for piece in block.pieces():
                yield {"text": piece}


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\r\n\r\n"
