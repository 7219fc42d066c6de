"""
An IR request (Anthropic Messages) as a Gemini C{generateContent} body; see the package docstring for
thought signatures and tool call ids.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from sapproxy.translate import ir
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.turns import split_turns
from sapproxy.translate.wire.gemini.schema import clean_schema
from sapproxy.translate.wire.gemini.signatures import own, tool_use_id_signature


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


def _tool_result_parts(block: dict[str, Any], name: str, path: str, multimodal: bool = False) -> list[dict[str, Any]]:
    """
    A tool result as a C{functionResponse}; its images and documents go inside it (C{functionResponse.parts},
    Gemini 3's multimodal function responses) where the model takes them, else as parts after it.
    """
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
    if multimodal and extra:
        return [{"functionResponse": {"name": name, "response": response, "parts": extra}}]
    return [{"functionResponse": {"name": name, "response": response}}] + extra


def _turn_parts(
    content: Any, role: str, path: str, tool_names: dict[str, str], multimodal: bool = False
) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or a list of blocks", f"{path}.content")
    parts: list[dict[str, Any]] = []
    signature: str | None = None
    # Signatures that ride in tool call ids (signatures.py) go back on their own calls; a thinking block
    # holding the same one (a client that also kept thinking_blocks) must not put it on another part.
    in_ids = {sig for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
              for sig in (tool_use_id_signature(b.get("id")),) if sig} if role == "model" else set()
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
            carried = tool_use_id_signature(tool_id) if role == "model" else None
            if carried:
                part["thoughtSignature"] = carried
                parts.append(part)
                continue
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
            parts.extend(_tool_result_parts(block, name, bpath, multimodal))
            continue
        elif kind == "thinking":
            sig = own(block.get("signature"))  # a foreign (Claude's) signature is never Gemini's business
            if role == "model" and sig and sig not in in_ids:
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


#: Gemini's limit on C{generationConfig.stopSequences}.
MAX_STOP_SEQUENCES = 5

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


def _least_thinking(model: str | None) -> dict[str, Any]:
    """
    Thinking off, or as little as the model allows: Gemini 2.5 Flash (and Flash-Lite) take a budget of 0,
    2.5 Pro refuses 0 ("This model only works in thinking mode") and takes 128, its minimum; Gemini 3
    cannot stop thinking and takes C{thinkingLevel: low}.
    """
    match = _MAJOR.search(model or "")
    if match is not None and int(match.group(1)) >= 3:
        return {"thinkingLevel": "low"}
    if model and "pro" in model:
        return {"thinkingBudget": 128}
    return {"thinkingBudget": 0}


def ir_request_to_gemini(body: ir.Request, *, model: str | None = None) -> dict[str, Any]:
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
        parts = _turn_parts(turn.content, grole, turn.path, tool_names, _needs_signatures(model))
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
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(f"stop_sequences: Gemini takes at most {MAX_STOP_SEQUENCES} stop sequences, "
                                 f"not {len(stops)}", "stop_sequences")
        gen["stopSequences"] = [s for s in stops if isinstance(s, str)]
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
        elif thinking.get("type") == "disabled":
            gen["thinkingConfig"] = _least_thinking(model)
    sampling = body.get("_sampling")
    if isinstance(sampling, dict):
        for src, dst in (("seed", "seed"), ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
            if sampling.get(src) is not None:
                gen[dst] = sampling[src]
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
