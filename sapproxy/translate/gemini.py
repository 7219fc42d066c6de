"""
Gemini / Vertex AI (C{generateContent}, C{streamGenerateContent}) upstreams behind the IR.

Request: L{ir_request_to_gemini}.  Response: L{gemini_response_to_ir}.  Stream: L{GeminiToAnthropicStream}.

Thought signatures
==================

Gemini 3 attaches an opaque C{thoughtSignature} to the part that follows its (hidden) reasoning: a
C{functionCall} part, a text part, or an otherwise empty text part C{{"text": "", "thoughtSignature": ...}}.
It must be sent back on the same kind of part in the next request, or Gemini loses (or, for function calls,
refuses) the reasoning context.  The IR carries it as a B{thinking block}:

  - a C{thought: true} part becomes C{{"type": "thinking", "thinking": <text>, "signature": <its
    thoughtSignature or "">}};
  - any other part with a C{thoughtSignature} is preceded by C{{"type": "thinking", "thinking": "",
    "signature": <thoughtSignature>}} (so an empty signature-only part becomes just that thinking block).

On the way back (L{ir_request_to_gemini}) a thinking block's thought text is not resent (Gemini does not
want thought summaries back), but a non-empty C{signature} is attached to the B{next} part built from the
same assistant turn; a signature with nothing after it becomes C{{"text": "", "thoughtSignature": ...}}.
So C{[functionCall+sig]} -> C{[thinking(sig), tool_use]} -> C{[functionCall+sig]}, and
C{[text, text""+sig]} -> C{[text, thinking(sig)]} -> C{[text, text""+sig]}: the signature survives any
client that returns thinking blocks as Anthropic requires.  C{redacted_thinking} blocks (never produced
here) are dropped on the way to Gemini.

Tool call ids
=============

Gemini function calls have no ids (or optional ones the Gemini API does not require back); tool_use ids are
derived deterministically from the message id and the call's position (C{toolu_<hash>}), and a tool_result's
C{functionResponse.name} is found from the matching tool_use earlier in the conversation.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from typing import Any, Iterable

from sapproxy.translate.anthropic_events import message_start
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.turns import split_turns
from sapproxy.translate.ids import new_message_id
from sapproxy.translate.usage import Usage

# --------------------------------------------------------------------------------------------------------
# JSON schema -> Gemini's OpenAPI subset

#: Schema keywords Gemini accepts (Vertex C{Schema}); everything else is dropped.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "properties",
        "required",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
        "default",
        "example",
    }
)
_FORMATS = {
    "string": {"enum", "date-time"},
    "integer": {"int32", "int64"},
    "number": {"float", "double"},
}
_MAX_DEPTH = 32


def _resolve_ref(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for piece in ref[2:].split("/"):
        piece = piece.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or piece not in node:
            return None
        node = node[piece]
    return node


def clean_schema(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """
    A JSON schema reduced to what Gemini's C{Schema} accepts: local C{$ref}s inlined (to a bounded depth),
    C{type: [x, "null"]} -> C{type: x, nullable: true}, C{const} -> C{enum}, C{oneOf} -> C{anyOf}, a lone
    C{allOf} merged, non-string enum values stringified, unsupported keywords and formats dropped,
    C{required} limited to declared properties.
    """
    if not isinstance(schema, dict):
        return {}
    if root is None:
        root = schema
    if depth > _MAX_DEPTH:
        return {"type": "object"}
    if "$ref" in schema and isinstance(schema["$ref"], str):
        target = _resolve_ref(schema["$ref"], root)
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        if isinstance(target, dict):
            return clean_schema({**target, **extra}, root, depth + 1)
        return clean_schema(extra or {"type": "object"}, root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        props = dict(merged["properties"]) if isinstance(merged.get("properties"), dict) else {}
        required = list(merged["required"]) if isinstance(merged.get("required"), list) else []
        for part in schema["allOf"]:
            if isinstance(part, dict):
                part = clean_schema(part, root, depth + 1)
                props.update(part.get("properties") or {})
                required.extend(part.get("required") or [])
                for key, value in part.items():
                    merged.setdefault(key, value)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        schema = merged
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        if "null" in kinds:
            out["nullable"] = True
            kinds = [k for k in kinds if k != "null"]
        if len(kinds) == 1:
            kind = kinds[0]
        elif kinds:
            out["anyOf"] = [{"type": k} for k in kinds]
            kind = None
        else:
            kind = None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind
    elif kind == "null":
        out["nullable"] = True
    for key, value in schema.items():
        if key in ("type", "$ref", "allOf") or key not in _SCHEMA_KEYS and key not in ("const", "oneOf"):
            continue
        if key == "properties":
            if isinstance(value, dict):
                out["properties"] = {
                    str(name): clean_schema(sub, root, depth + 1) for name, sub in value.items()
                }
        elif key == "items":
            if isinstance(value, dict):
                out["items"] = clean_schema(value, root, depth + 1)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                out["items"] = clean_schema(value[0], root, depth + 1)
        elif key in ("anyOf", "oneOf"):
            if isinstance(value, list):
                options = [clean_schema(sub, root, depth + 1) for sub in value if isinstance(sub, dict)]
                non_null = [o for o in options if o != {} and o.get("type") != "null"]
                if len(non_null) < len(options):
                    out["nullable"] = True
                if len(non_null) == 1 and "type" not in out:
                    out.update({k: v for k, v in non_null[0].items() if k not in out})
                elif non_null:
                    out["anyOf"] = non_null
        elif key == "const":
            out["enum"] = [value if isinstance(value, str) else json.dumps(value)]
            out.setdefault("type", "string")
        elif key == "enum":
            if isinstance(value, list):
                values = [v for v in value if v is not None]
                if len(values) < len(value):
                    out["nullable"] = True
                out["enum"] = [v if isinstance(v, str) else json.dumps(v) for v in values]
                out["type"] = "string"
        elif key == "format":
            allowed = _FORMATS.get(str(out.get("type") or ""), set())
            if isinstance(value, str) and value in allowed:
                out["format"] = value
        elif key == "required":
            if isinstance(value, list):
                out["required"] = [v for v in value if isinstance(v, str)]
        elif key in ("description", "title", "pattern"):
            if isinstance(value, str):
                out[key] = value
        elif key == "nullable":
            if value is True:
                out["nullable"] = True
        else:
            out[key] = value
    if "type" not in out and "anyOf" not in out:
        if "properties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
    if "required" in out:
        props = out.get("properties") or {}
        out["required"] = [name for name in out["required"] if name in props]
        if not out["required"]:
            del out["required"]
    if out.get("type") == "object" and not out.get("properties"):
        out.pop("properties", None)
        out.pop("required", None)
    if "anyOf" in out and "type" in out:
        del out["anyOf"]
    return out


# --------------------------------------------------------------------------------------------------------
# IR request -> Gemini


def _guess_mime(url: str, default: str = "application/octet-stream") -> str:
    path = url.split("?", 1)[0].split("#", 1)[0]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or default


def _text_of(content: Any, path: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise InvalidRequest("system blocks must be text blocks", f"{path}[{i}]")
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidRequest("text must be a string", f"{path}[{i}].text")
            texts.append(text)
        return "\n\n".join(t for t in texts if t)
    if content is None:
        return ""
    raise InvalidRequest("must be a string or a list of text blocks", path)


def _media_part(block: dict[str, Any], path: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest("source is required", f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        data, mime = source.get("data"), source.get("media_type")
        if not isinstance(data, str) or not isinstance(mime, str):
            raise InvalidRequest("base64 source needs data and media_type", f"{path}.source")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise InvalidRequest("url source needs a url", f"{path}.source.url")
        default = "image/jpeg" if block.get("type") == "image" else "application/pdf"
        return {"fileData": {"mimeType": _guess_mime(url, default), "fileUri": url}}
    if kind == "text" and block.get("type") == "document":
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest("text source needs data", f"{path}.source.data")
        return {"text": data}
    raise InvalidRequest(f"unsupported source type {kind!r} for Gemini", f"{path}.source.type")


def _tool_result_parts(block: dict[str, Any], name: str, path: str) -> list[dict[str, Any]]:
    content = block.get("content")
    extra: list[dict[str, Any]] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise InvalidRequest("tool_result content must be blocks", f"{path}.content[{i}]")
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise InvalidRequest("text must be a string", f"{path}.content[{i}].text")
                texts.append(part["text"])
            elif part.get("type") in ("image", "document"):
                extra.append(_media_part(part, f"{path}.content[{i}]"))
            else:
                raise InvalidRequest(
                    f"unsupported tool_result content type {part.get('type')!r}", f"{path}.content[{i}].type"
                )
        text = "\n".join(texts)
    else:
        raise InvalidRequest("tool_result content must be a string or a list of blocks", f"{path}.content")
    key = "error" if block.get("is_error") else "content"
    response: dict[str, Any] = {key: text}
    return [{"functionResponse": {"name": name, "response": response}}] + extra


def _turn_parts(
    content: Any, role: str, path: str, tool_names: dict[str, str]
) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or a list of blocks", f"{path}.content")
    parts: list[dict[str, Any]] = []
    signature: str | None = None
    for i, block in enumerate(content):
        bpath = f"{path}.content[{i}]"
        if not isinstance(block, dict):
            raise InvalidRequest("content blocks must be objects", bpath)
        kind = block.get("type")
        part: dict[str, Any] | None = None
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidRequest("text must be a string", f"{bpath}.text")
            if text or signature:
                part = {"text": text}
        elif kind in ("image", "document"):
            part = _media_part(block, bpath)
        elif kind == "tool_use":
            name, tool_id, args = block.get("name"), block.get("id"), block.get("input", {})
            if not isinstance(name, str) or not name:
                raise InvalidRequest("tool_use needs a name", f"{bpath}.name")
            if not isinstance(args, dict):
                raise InvalidRequest("tool_use input must be an object", f"{bpath}.input")
            if isinstance(tool_id, str):
                tool_names[tool_id] = name
            part = {"functionCall": {"name": name, "args": args}}
        elif kind == "tool_result":
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str):
                raise InvalidRequest("tool_result needs tool_use_id", f"{bpath}.tool_use_id")
            name = tool_names.get(tool_id)
            if name is None:
                raise InvalidRequest(
                    f"tool_result {tool_id!r} has no matching tool_use earlier in the conversation",
                    f"{bpath}.tool_use_id",
                )
            parts.extend(_tool_result_parts(block, name, bpath))
            continue
        elif kind == "thinking":
            sig = block.get("signature")
            if role == "model" and isinstance(sig, str) and sig:
                signature = sig
            continue
        elif kind == "redacted_thinking":
            continue
        else:
            raise InvalidRequest(f"content block type {kind!r} is not supported for Gemini", f"{bpath}.type")
        if part is not None:
            if signature:
                part["thoughtSignature"] = signature
                signature = None
            parts.append(part)
    if signature:
        parts.append({"text": "", "thoughtSignature": signature})
    return parts


_TOOL_MODES = {"auto": "AUTO", "any": "ANY", "tool": "ANY", "none": "NONE"}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", "tools")
    declarations = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest("tools must be objects", f"tools[{i}]")
        if tool.get("type") not in (None, "custom"):
            # Anthropic server / typed tools (web_search, bash, ...) have no Gemini equivalent here.
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool needs a name", f"tools[{i}].name")
        decl: dict[str, Any] = {"name": name}
        if isinstance(tool.get("description"), str) and tool["description"]:
            decl["description"] = tool["description"]
        params = clean_schema(tool.get("input_schema") or {})
        if params.get("properties"):
            decl["parameters"] = params
        declarations.append(decl)
    return [{"functionDeclarations": declarations}] if declarations else []


#: Google's documented placeholder for a function call whose real signature was lost (a client that
#: rebuilt or compacted its history, an OpenAI client that never sees thinking blocks).
SKIP_SIGNATURE = "skip_thought_signature_validator"
_MAJOR = re.compile(r"(?:^|/)gemini-(\d+)")


def _needs_signatures(model: str | None) -> bool:
    """Gemini 3 and later refuse replayed function calls without a C{thoughtSignature} (HTTP 400)."""
    if not model:
        return False
    match = _MAJOR.search(model)
    return match is not None and int(match.group(1)) >= 3


def _sign_function_calls(contents: list[dict[str, Any]]) -> None:
    """In each model turn whose function calls carry no signature, put the placeholder on the first call
    (parallel calls carry one signature, on the first)."""
    for turn in contents:
        if turn["role"] != "model":
            continue
        calls = [part for part in turn["parts"] if "functionCall" in part]
        if calls and not any("thoughtSignature" in part for part in calls):
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def ir_request_to_gemini(body: dict[str, Any], *, model: str | None = None) -> dict[str, Any]:
    """
    An IR (Anthropic Messages) request as a Gemini C{generateContent} body (model and stream are in the URL).

    @param model: the upstream Gemini model id, where known.  For Gemini 3 and later, replayed function calls
        whose signature the client lost get Google's placeholder L{SKIP_SIGNATURE}, so the request is not
        refused; real signatures are never replaced.
    """
    parts_of_system, conversation = split_turns(body)
    out: dict[str, Any] = {}
    system_texts = [_text_of(part.content, part.path) for part in parts_of_system]
    contents: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}
    for turn in conversation:
        grole = "model" if turn.role == "assistant" else "user"
        parts = _turn_parts(turn.content, grole, turn.path, tool_names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == grole:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": grole, "parts": parts})
    if _needs_signatures(model):
        _sign_function_calls(contents)
    out["contents"] = contents
    system_text = "\n\n".join(t for t in system_texts if t)
    if system_text:
        out["systemInstruction"] = {"parts": [{"text": system_text}]}

    if body.get("tools"):
        tools = _tools(body["tools"])
        if tools:
            out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and "tools" in out:
        kind = choice.get("type")
        mode = _TOOL_MODES.get(kind) if isinstance(kind, str) else None
        if mode is None:
            raise InvalidRequest(f"unsupported tool_choice type {choice.get('type')!r}", "tool_choice.type")
        config: dict[str, Any] = {"mode": mode}
        if choice.get("type") == "tool":
            if not isinstance(choice.get("name"), str):
                raise InvalidRequest("tool_choice of type tool needs a name", "tool_choice.name")
            config["allowedFunctionNames"] = [choice["name"]]
        out["toolConfig"] = {"functionCallingConfig": config}

    gen: dict[str, Any] = {}
    for src, dst in (("max_tokens", "maxOutputTokens"), ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        value = body.get(src)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            gen[dst] = value
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        gen["stopSequences"] = [s for s in stops if isinstance(s, str)][:5]
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            gen["thinkingConfig"] = {
                "thinkingBudget": budget if isinstance(budget, int) and not isinstance(budget, bool) else -1,
                "includeThoughts": True,
            }
        elif thinking.get("type") == "adaptive":
            gen["thinkingConfig"] = {"thinkingBudget": -1, "includeThoughts": True}
    fmt = body.get("_response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            gen["responseMimeType"] = "application/json"
            spec = fmt.get("json_schema")
            if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
                gen["responseSchema"] = clean_schema(spec["schema"])
        elif fmt.get("type") == "json_object":
            gen["responseMimeType"] = "application/json"
    if gen:
        out["generationConfig"] = gen
    return out


# --------------------------------------------------------------------------------------------------------
# Gemini response -> IR

_REFUSALS = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)


def stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    if finish_reason == "MAX_TOKENS":
        return "max_tokens"
    if isinstance(finish_reason, str) and finish_reason in _REFUSALS:
        return "refusal"
    return "tool_use" if has_tool_use else "end_turn"


def tool_use_id(seed: str, index: int) -> str:
    """A deterministic Anthropic-shaped tool_use id for the C{index}th call of response C{seed}."""
    digest = hashlib.sha256(f"{seed}\x00{index}".encode()).hexdigest()
    return "toolu_01" + digest[:22]


def _message_id(resp: dict[str, Any]) -> str:
    rid = resp.get("responseId")
    return "msg_" + rid if isinstance(rid, str) and rid else new_message_id()


def _refusal_details(reason: str) -> dict[str, Any]:
    return {"type": "refusal", "explanation": f"Gemini blocked the request ({reason})."}


def _usage(resp: dict[str, Any]) -> Usage:
    meta = resp.get("usageMetadata")
    return Usage.from_gemini(meta if isinstance(meta, dict) else {})


def gemini_response_to_ir(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """A Gemini C{generateContent} response as an IR (Anthropic Messages) response naming C{model}."""
    message_id = _message_id(resp)
    content: list[dict[str, Any]] = []
    candidates = resp.get("candidates") or []
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    parts = ((candidate.get("content") or {}).get("parts")) or []
    calls = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        sig = part.get("thoughtSignature")
        if part.get("thought") is True:
            text = part.get("text") if isinstance(part.get("text"), str) else ""
            if content and content[-1]["type"] == "thinking" and not content[-1]["signature"]:
                content[-1]["thinking"] += text
                content[-1]["signature"] = sig if isinstance(sig, str) else ""
            else:
                content.append({"type": "thinking", "thinking": text, "signature": sig if isinstance(sig, str) else ""})
            continue
        if isinstance(sig, str) and sig:
            if content and content[-1]["type"] == "thinking" and not content[-1]["signature"]:
                content[-1]["signature"] = sig
            else:
                content.append({"type": "thinking", "thinking": "", "signature": sig})
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args")
            content.append(
                {
                    "type": "tool_use",
                    "id": tool_use_id(message_id, calls),
                    "name": call.get("name") or "",
                    "input": args if isinstance(args, dict) else {},
                }
            )
            calls += 1
            continue
        text = part.get("text")
        if isinstance(text, str) and text:
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += text
            else:
                content.append({"type": "text", "text": text})
    feedback = resp.get("promptFeedback") or {}
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    finish = candidate.get("finishReason")
    out: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "refusal" if block and not candidates else stop_reason(finish, calls > 0),
        "stop_sequence": None,
        "usage": _usage(resp).to_anthropic(),
    }
    if block and not candidates:
        out["stop_details"] = _refusal_details(str(block))
    elif out["stop_reason"] == "refusal":
        out["stop_details"] = _refusal_details(str(finish))
    return out


_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "overloaded_error",
    "DEADLINE_EXCEEDED": "api_error",
    "INTERNAL": "api_error",
}


def gemini_error_event(error: dict[str, Any]) -> dict[str, Any]:
    """A Google API error object (C{{"code", "message", "status"}}) as an Anthropic stream C{error} event."""
    status = error.get("status")
    kind = _ERROR_TYPES.get(status, "api_error") if isinstance(status, str) else "api_error"
    if kind == "api_error" and error.get("code") == 429:
        kind = "rate_limit_error"
    return {"type": "error", "error": {"type": kind, "message": str(error.get("message") or status or "upstream error")}}


# --------------------------------------------------------------------------------------------------------
# Streaming

_PATH_TOKEN = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")


def _parse_json_path(path: str) -> list[str | int] | None:
    if not path.startswith("$"):
        return None
    keys: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            return None
        if m.group(1) is not None:
            keys.append(m.group(1))
        elif m.group(2) is not None:
            keys.append(int(m.group(2)))
        else:
            keys.append(m.group(3) if m.group(3) is not None else m.group(4))
        pos = m.end()
    return keys


def _container_for(key: str | int) -> Any:
    return [] if isinstance(key, int) else {}


def apply_partial_arg(args: dict[str, Any], partial: dict[str, Any]) -> None:
    """
    Apply one Vertex C{PartialArg} to the arguments object being rebuilt: strings at the same path are
    concatenated (long strings arrive in pieces), other values set.
    """
    keys = _parse_json_path(str(partial.get("jsonPath") or ""))
    if not keys:
        return
    if "stringValue" in partial:
        value: Any = partial.get("stringValue") or ""
        append = True
    elif "numberValue" in partial:
        value, append = partial.get("numberValue"), False
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
    elif "boolValue" in partial:
        value, append = bool(partial.get("boolValue")), False
    elif "nullValue" in partial:
        value, append = None, False
    else:
        return
    node: Any = args
    for key, following in zip(keys, keys[1:]):
        if isinstance(key, int):
            if not isinstance(node, list):
                return
            while len(node) <= key:
                node.append(None)
            if not isinstance(node[key], (dict, list)):
                node[key] = _container_for(following)
            node = node[key]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(key), (dict, list)):
                node[key] = _container_for(following)
            node = node[key]
    last = keys[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            return
        while len(node) <= last:
            node.append(None)
        current = node[last]
        node[last] = current + value if append and isinstance(current, str) else value
    else:
        if not isinstance(node, dict):
            return
        current = node.get(last)
        node[last] = current + value if append and isinstance(current, str) else value


class GeminiToAnthropicStream:
    """
    C{streamGenerateContent} chunks (one C{GenerateContentResponse} each) as Anthropic stream events.

    Text and C{thought: true} parts stream as text / thinking deltas; a C{thoughtSignature} becomes a
    C{signature_delta} (on the open thinking block, or on a signature-only thinking block of its own, see
    the module docstring).  Whole C{functionCall} parts become a tool_use block with one C{input_json_delta};
    Vertex's streamed calls (C{willContinue} + C{partialArgs} + empty C{functionCall{}} terminator) are
    rebuilt and sent as one C{input_json_delta} when the call completes.  C{message_delta} and
    C{message_stop} are sent by L{finish}, so usage reported on the last chunk is included.
    """

    def __init__(self, model: str, *, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Usage | None = None
        self._started = False
        self._finished = False
        self._index = -1
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._calls = 0
        self._call_args: dict[str, Any] | None = None  # a streamed (partialArgs) call in progress
        self._finish_reason: str | None = None
        self._block_reason: str | None = None
        self._saw_tool_use = False
        self._pending_signatures: list[str] = []

    # -- helpers

    def _start(self, out: list[dict[str, Any]]) -> None:
        if self._started:
            return
        self._started = True
        usage = (self.usage or Usage()).to_anthropic()
        usage["output_tokens"] = 0
        out.append(message_start(self.message_id, self.model, usage))

    def _close(self, out: list[dict[str, Any]]) -> None:
        if self._open is None:
            return
        if self._open == "tool_use" and self._call_args is not None:
            out.append(self._json_delta(self._call_args))
            self._call_args = None
        out.append({"type": "content_block_stop", "index": self._index})
        self._open = None
        if self._pending_signatures:
            pending, self._pending_signatures = self._pending_signatures, []
            for sig in pending:
                self._signature(out, sig)

    def _open_block(self, out: list[dict[str, Any]], block: dict[str, Any]) -> None:
        self._close(out)
        self._index += 1
        self._open = block["type"]
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})

    def _json_delta(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "content_block_delta",
            "index": self._index,
            "delta": {"type": "input_json_delta", "partial_json": json.dumps(args, ensure_ascii=False)},
        }

    def _signature(self, out: list[dict[str, Any]], sig: str) -> None:
        if self._open != "thinking":
            self._open_block(out, {"type": "thinking", "thinking": "", "signature": ""})
        out.append(
            {"type": "content_block_delta", "index": self._index, "delta": {"type": "signature_delta", "signature": sig}}
        )
        self._close(out)

    def _start_call(self, out: list[dict[str, Any]], call: dict[str, Any]) -> None:
        self._open_block(
            out,
            {
                "type": "tool_use",
                "id": tool_use_id(self.message_id, self._calls),
                "name": str(call.get("name") or ""),
                "input": {},
            },
        )
        self._calls += 1
        self._saw_tool_use = True

    def _function_call(self, out: list[dict[str, Any]], call: dict[str, Any]) -> None:
        name = call.get("name")
        if name:
            self._start_call(out, call)
            args = call.get("args")
            self._call_args = dict(args) if isinstance(args, dict) else {}
        elif self._open != "tool_use" or self._call_args is None:
            # A continuation or terminator with no call in progress: nothing to attach it to.
            return
        partials = call.get("partialArgs")
        if isinstance(partials, list):
            for partial in partials:
                if isinstance(partial, dict):
                    apply_partial_arg(self._call_args, partial)
        if call.get("willContinue") is not True:
            # A whole call, or the end (often the empty functionCall{} terminator) of a streamed one.
            self._close(out)

    def _part(self, out: list[dict[str, Any]], part: dict[str, Any]) -> None:
        sig = part.get("thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        if part.get("thought") is True:
            text = part.get("text")
            if self._open != "thinking":
                self._open_block(out, {"type": "thinking", "thinking": "", "signature": ""})
            if isinstance(text, str) and text:
                out.append(
                    {"type": "content_block_delta", "index": self._index, "delta": {"type": "thinking_delta", "thinking": text}}
                )
            if sig:
                self._signature(out, sig)
            return
        call = part.get("functionCall")
        if isinstance(call, dict):
            if sig:
                if call.get("name") or self._open != "tool_use":
                    self._signature(out, sig)
                else:
                    # A signature on the continuation of a streamed call: sent once the call is complete.
                    self._pending_signatures.append(sig)
            self._function_call(out, call)
            return
        if sig:
            self._signature(out, sig)
        text = part.get("text")
        if isinstance(text, str) and text:
            if self._open != "text":
                self._open_block(out, {"type": "text", "text": ""})
            out.append({"type": "content_block_delta", "index": self._index, "delta": {"type": "text_delta", "text": text}})

    # -- the state machine

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._finished:
            return out
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict) and ("promptTokenCount" in meta or "candidatesTokenCount" in meta):
            found = Usage.from_gemini(meta)
            self.usage = found if self.usage is None else self.usage.merged(found)
        self._start(out)
        error = chunk.get("error")
        if isinstance(error, dict) and not chunk.get("candidates"):
            # Vertex / Gemini report a failure mid-stream as a chunk holding only a Google error object.
            self._close(out)
            self._finished = True
            out.append(gemini_error_event(error))
            return out
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self._block_reason = str(feedback["blockReason"])
        candidates = chunk.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
            candidate = candidates[0]
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if isinstance(parts, list):
                for part in parts:
                    if isinstance(part, dict):
                        self._part(out, part)
            if candidate.get("finishReason"):
                self._finish_reason = str(candidate["finishReason"])
                self._close(out)
        return out

    def finish(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._finished:
            return out
        self._start(out)
        self._close(out)
        self._finished = True
        if self._block_reason and self._finish_reason is None:
            reason = "refusal"
            details: dict[str, Any] | None = _refusal_details(self._block_reason)
        else:
            reason = stop_reason(self._finish_reason, self._saw_tool_use)
            details = _refusal_details(str(self._finish_reason)) if reason == "refusal" else None
        delta: dict[str, Any] = {"stop_reason": reason, "stop_sequence": None}
        if details is not None:
            delta["stop_details"] = details
        out.append({"type": "message_delta", "delta": delta, "usage": (self.usage or Usage()).to_anthropic()})
        out.append({"type": "message_stop"})
        return out


def iter_chunks(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    """JSON-per-line chunks (tests, replays); blank lines skipped."""
    for line in lines:
        if line.strip():
            yield json.loads(line)
