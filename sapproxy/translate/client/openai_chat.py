"""
An OpenAI Chat Completions client in front of an IR (Anthropic Messages) upstream.

Three converters:

  - L{chat_request_to_ir}: the client's request body to an Anthropic Messages request;
  - L{ir_response_to_chat}: the upstream's Message to a C{chat.completion};
  - L{AnthropicToOpenAIStream}: the upstream's stream events to C{chat.completion.chunk}s.

Side keys (not part of either public API; documented here because other modules rely on them):

  - C{message.reasoning_content} (responses) and C{delta.reasoning_content} (chunks): the thinking text.
    Not OpenAI's, but the de-facto extension that DeepSeek, vLLM, LiteLLM and OpenRouter clients read.
  - C{message.thinking_blocks} / C{delta.thinking_blocks}: LiteLLM's shape,
    C{[{"type": "thinking", "thinking": ..., "signature": ...}, {"type": "redacted_thinking", "data": ...}]}.
    Claude requires a thinking block to come back with its signature, byte for byte, when a tool loop
    continues with thinking on; a client that returns C{thinking_blocks} on its assistant message gets the
    blocks rebuilt exactly by L{chat_request_to_ir}.  In a stream the whole block (thinking text and
    signature) is sent once, at the block's end, on top of the C{reasoning_content} deltas, with an extra
    C{index} (0, 1, ... per block): the openai SDK's stream accumulator merges every list in a delta by its
    entries' C{index} and raises on entries without one.
  - C{_response_format} on the IR request: the client's C{response_format} when it is C{json_schema} or
    C{json_object}, as sent.  The Anthropic Messages API has no such field, so the Claude upstream path MUST pop it (and
    any other C{_}-prefixed key) before sending; the Gemini converter maps it to C{responseSchema}, and
    L{sapproxy.translate.wire.openai_chat.ir_request_to_chat} restores it as C{response_format}.  A system
    instruction asking for JSON is added as well, so a converter that ignores the key still gets JSON.
  - C{_max_tokens_default} on the IR request: the client set no limit, so C{max_tokens} is a default that
    L{sapproxy.translate.fit} replaces with the model's own ceiling where known.
  - C{_sampling} on the IR request: C{seed}, C{presence_penalty}, C{frequency_penalty} as sent (see
    L{_sampling}).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from zope.interface import implementer

from sapproxy.errors import GatewayError
from sapproxy.interfaces import IClientAPI, IClientCall
from sapproxy.translate.structured_output import JSON_OBJECT_INSTRUCTION, json_schema_instruction
from sapproxy.translate.counting import count_chat_tokens, count_tokens, sketch_tokens
from sapproxy.translate import ir
from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.estimate import estimate_prompt
from sapproxy.translate.framing.sse import DONE, KEEPALIVE_COMMENT, Rendered, encode_data, json_text, split_template
from sapproxy.translate.jsontext import json_string, parse_json
from sapproxy.translate.ids import chat_id_from_message_id, new_tool_use_id, random_hex
from sapproxy.translate.usage import Usage

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "REASONING_BUDGETS",
    "chat_request_to_ir",
    "ir_response_to_chat",
    "AnthropicToOpenAIStream",
    "openai_finish_reason",
]

DEFAULT_MAX_TOKENS = 4096

#: C{reasoning_effort} -> Anthropic C{thinking.budget_tokens}.  1024 is Anthropic's minimum budget.
REASONING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}

_DATA_URL = re.compile(r"^data:([^;,]+)?((?:;[^;,]*)*?);base64,(.*)$", re.DOTALL)

_JSON_OBJECT_INSTRUCTION = JSON_OBJECT_INSTRUCTION


def openai_finish_reason(stop_reason: str | None) -> str:
    """Anthropic C{stop_reason} -> OpenAI C{finish_reason}; unknown and missing reasons are C{stop}."""
    if stop_reason is None:
        return "stop"
    return _FINISH.get(stop_reason, "stop")


# --------------------------------------------------------------------------------------------------------
# Requests


def _text_of(content: Any, path: str, allowed: tuple[str, ...] = ("text",)) -> list[str]:
    """The texts of a string-or-parts C{content} that may hold only text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise InvalidRequest(f"{path} must be a string or an array of content parts", path)
    texts: list[str] = []
    for j, part in enumerate(content):
        ppath = f"{path}[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{ppath} must be an object", ppath)
        kind = part.get("type")
        if kind not in allowed:
            raise InvalidRequest(f"{ppath}.type {kind!r} is not supported here", f"{ppath}.type")
        value = part.get("text") if kind == "text" else part.get(kind)
        if not isinstance(value, str):
            raise InvalidRequest(f"{ppath}.{kind} must be a string", f"{ppath}.{kind}")
        texts.append(value)
    return texts


def _cache_control(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    # Some OpenAI-dialect clients (Cline, Roo, OpenRouter users) mark parts with Anthropic's cache_control.
    cc = part.get("cache_control")
    if isinstance(cc, dict):
        block["cache_control"] = cc
    return block


def _image_source(url: Any, path: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{path} must be a non-empty string", path)
    if url.startswith("data:"):
        match = _DATA_URL.match(url)
        if match is None:
            raise InvalidRequest(f"{path} is a data URL but not a base64 one", path)
        return {"type": "base64", "media_type": match.group(1) or "image/png", "data": match.group(3)}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise InvalidRequest(f"{path} must be an http(s) URL or a base64 data URL", path)


def _user_blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{path} must be a string or an array of content parts", path)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        ppath = f"{path}[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{ppath} must be an object", ppath)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{ppath}.text must be a string", f"{ppath}.text")
            if text.strip():
                blocks.append(_cache_control(part, {"type": "text", "text": text}))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            source = _image_source(url, f"{ppath}.image_url.url")
            blocks.append(_cache_control(part, {"type": "image", "source": source}))
        elif kind == "file":
            blocks.append(_cache_control(part, _file_block(part.get("file"), f"{ppath}.file")))
        else:
            raise InvalidRequest(f"{ppath}.type {kind!r} is not supported", f"{ppath}.type")
    return blocks


def _file_block(file: Any, path: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise InvalidRequest(f"{path}.file_data is required (uploaded file ids are not supported)", path)
    match = _DATA_URL.match(data)
    if match is not None:
        media_type, payload = match.group(1) or "application/pdf", match.group(3)
    else:
        media_type, payload = "application/pdf", data  # the SDKs also send bare base64
    if media_type != "application/pdf":
        raise InvalidRequest(f"{path}.file_data: only PDF files are supported, not {media_type}", path)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


def _parse_arguments(arguments: Any, path: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    if not isinstance(arguments, str):
        raise InvalidRequest(f"{path} must be a JSON string", path)
    try:
        # msgspec (the stdlib where they differ): the arguments of a long agent history are megabytes of JSON
        # text, parsed while the request is planned, in one stretch of the reactor (issue #15, item 4).
        value = parse_json(arguments)
    except ValueError:
        raise InvalidRequest(f"{path} is not valid JSON", path) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{path} must encode a JSON object", path)
    return value


def _thinking_blocks(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{path} must be an array", path)
    blocks: list[dict[str, Any]] = []
    for j, block in enumerate(value):
        bpath = f"{path}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        after = block.get("after") if isinstance(block, dict) and isinstance(block.get("after"), str) else None
        if kind == "thinking" and isinstance(block.get("signature"), str) and block["signature"]:
            thinking = block.get("thinking")
            blocks.append(
                {"type": "thinking", "thinking": thinking if isinstance(thinking, str) else "",
                 "signature": block["signature"]}
            )
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
        elif kind == "thinking":
            continue  # no signature: Claude would refuse it, and it carries nothing the model needs back
        else:
            raise InvalidRequest(f"{bpath}.type {kind!r} is not a thinking block", f"{bpath}.type")
        if after is not None:
            blocks[-1]["_after"] = after
    return blocks


def _interleave(blocks: list[dict[str, Any]], thinking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The thinking blocks back where they were: a block marked C{after} (see L{ir_response_to_chat}) right
    after the tool call it followed, the others first.  Claude requires interleaved thinking (thinking, tool
    call, thinking, tool call) back in its order.
    """
    calls = {block["id"] for block in blocks if block["type"] == "tool_use"}
    leading = [b for b in thinking if b.get("_after") not in calls]
    anchored: dict[str, list[dict[str, Any]]] = {}
    for block in thinking:
        if block.get("_after") in calls:
            anchored.setdefault(block["_after"], []).append(block)
    out = leading[:]
    for block in blocks:
        out.append(block)
        if block["type"] == "tool_use":
            out.extend(anchored.get(block["id"], ()))
    for block in out:
        block.pop("_after", None)
    return out


def _assistant_blocks(message: dict[str, Any], path: str, legacy: list[str]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thinking = _thinking_blocks(message["thinking_blocks"], f"{path}.thinking_blocks") \
        if message.get("thinking_blocks") is not None else []
    content = message.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            ppath = f"{path}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                if part["text"].strip():
                    blocks.append(_cache_control(part, {"type": "text", "text": part["text"]}))
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                if part["refusal"]:
                    blocks.append({"type": "text", "text": part["refusal"]})
            else:
                raise InvalidRequest(f"{ppath}.type {kind!r} is not supported", f"{ppath}.type")
    else:
        for text in _text_of(content, f"{path}.content"):
            if text.strip():
                blocks.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise InvalidRequest(f"{path}.tool_calls must be an array", f"{path}.tool_calls")
        for j, call in enumerate(tool_calls):
            cpath = f"{path}.tool_calls[{j}]"
            if not isinstance(call, dict):
                raise InvalidRequest(f"{cpath} must be an object", cpath)
            if call.get("type", "function") != "function":
                raise InvalidRequest(f"{cpath}.type {call.get('type')!r} is not supported", f"{cpath}.type")
            function = call.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidRequest(f"{cpath}.function.name is required", f"{cpath}.function.name")
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{cpath}.id is required", f"{cpath}.id")
            arguments = _parse_arguments(function.get("arguments"), f"{cpath}.function.arguments")
            blocks.append({"type": "tool_use", "id": call_id, "name": function["name"], "input": arguments})
    function_call = message.get("function_call")
    if isinstance(function_call, dict) and isinstance(function_call.get("name"), str):
        call_id = new_tool_use_id()
        legacy.append(call_id)
        arguments = _parse_arguments(function_call.get("arguments"), f"{path}.function_call.arguments")
        blocks.append({"type": "tool_use", "id": call_id, "name": function_call["name"], "input": arguments})
    return _interleave(blocks, thinking) if thinking else blocks


def _tool_result(message: dict[str, Any], tool_use_id: str, path: str) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
    if isinstance(content, list):
        parts = _user_blocks(content, f"{path}.content")
        if parts:
            result["content"] = parts
    elif isinstance(content, str):
        if content:
            result["content"] = content
    elif content is not None:
        raise InvalidRequest(f"{path}.content must be a string or an array of content parts", f"{path}.content")
    return result


def _named(message: dict[str, Any], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The blocks of a message with a C{name} (several people, or agents, in one conversation): the IR has no
    such field, so the first text says who speaks, C{"<name>: ..."}, as a transcript would.
    """
    name = message.get("name")
    if not isinstance(name, str) or not name.strip():
        return blocks
    for i, block in enumerate(blocks):
        if block.get("type") == "text":
            blocks[i] = {**block, "text": f"{name.strip()}: {block['text']}"}
            break
    return blocks


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be an array", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InvalidRequest(f"{path}.type {kind!r} is not supported", f"{path}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequest(f"{path}.function.name is required", f"{path}.function.name")
        schema = function.get("parameters")
        if not isinstance(schema, dict) or not schema:
            schema = {"type": "object", "properties": {}}
        elif "type" not in schema:
            schema = {"type": "object", **schema}
        converted: dict[str, Any] = {"name": function["name"], "input_schema": schema}
        if isinstance(function.get("description"), str):
            converted["description"] = function["description"]
        if isinstance(function.get("strict"), bool):
            converted["strict"] = function["strict"]
        _cache_control(tool, converted)
        out.append(converted)
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") == "function" and isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
        if choice.get("type") == "allowed_tools":
            mode = (choice.get("allowed_tools") or {}).get("mode")
            return {"type": "any"} if mode == "required" else {"type": "auto"}
    raise InvalidRequest("tool_choice must be auto, none, required or a named function", "tool_choice")


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    """
    The OpenAI sampling parameters the IR has no field for (C{seed}, C{presence_penalty},
    C{frequency_penalty}), as the side key C{_sampling}: Gemini maps them, the Claude path refuses those
    that would change the answer (L{sapproxy.translate.fit}).  C{logprobs}, C{top_logprobs} and C{n} go
    there too: Gemini answers them whole (C{responseLogprobs}, C{logprobs}, C{candidateCount}, read back by
    L{sapproxy.translate.wire.gemini.response}); the fitting refuses them everywhere else, and in streams.
    """
    out: dict[str, Any] = {}
    logprobs, top = body.get("logprobs"), body.get("top_logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest("logprobs must be a boolean", "logprobs")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
            raise InvalidRequest("top_logprobs must be an integer from 0 to 20", "top_logprobs")
        if logprobs is not True:
            raise InvalidRequest("logprobs must be true when top_logprobs is set", "top_logprobs")
    if logprobs is True:
        out["logprobs"] = True
        if top:
            out["top_logprobs"] = top
    n = body.get("n")
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidRequest("n must be a positive integer", "n")
        if n > 1:
            out["n"] = n
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidRequest("seed must be an integer", "seed")
        out["seed"] = seed
    for key in ("presence_penalty", "frequency_penalty"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not -2 <= value <= 2:
            raise InvalidRequest(f"{key} must be a number from -2 to 2", key)
        out[key] = value
    return out


def _allowed_tools(choice: Any) -> list[str] | None:
    """The tool names of an C{allowed_tools} choice, or None for any other choice."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return None
    spec = choice.get("allowed_tools")
    tools = spec.get("tools") if isinstance(spec, dict) else None
    if not isinstance(tools, list) or not tools:
        raise InvalidRequest("tool_choice.allowed_tools.tools must be a non-empty array", "tool_choice.allowed_tools.tools")
    names: list[str] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else (tool.get("name") if isinstance(tool, dict) else None)
        if not isinstance(name, str) or not name:
            path = f"tool_choice.allowed_tools.tools[{i}].function.name"
            raise InvalidRequest(f"{path} is required", path)
        names.append(name)
    return names


def _only(tools: list[dict[str, Any]], allowed: list[str]) -> list[dict[str, Any]]:
    """
    The tools named in an C{allowed_tools} choice: the IR has no such restriction, so the others are not
    offered at all (the model cannot call what it is not shown).
    """
    known = {tool["name"] for tool in tools}
    for i, name in enumerate(allowed):
        if name not in known:
            path = f"tool_choice.allowed_tools.tools[{i}]"
            raise InvalidRequest(f"{path} names {name!r}, which is not in tools", path)
    return [tool for tool in tools if tool["name"] in allowed]


def _positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"{key} must be a positive integer", key)
    return value


def chat_request_to_ir(body: dict[str, Any], *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> ir.Request:
    """
    An OpenAI Chat Completions request body as an Anthropic Messages request body.

    System and developer messages, wherever they stand, become the top-level C{system} blocks in order;
    tool results become C{tool_result} blocks in user turns; consecutive turns of one role are merged,
    because Anthropic requires user and assistant to alternate.  Empty and whitespace-only texts are
    dropped (Claude refuses them).  C{reasoning_effort} turns thinking on unless the request forces a tool
    or continues a tool loop whose assistant turn lacks its signed thinking block (both refused by Claude).

    @raise InvalidRequest: for anything the IR cannot express or the client got wrong, naming its path.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", "messages")

    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    legacy_calls: list[str] = []
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{path} must be an object", path)
        role = message.get("role")
        if role in ("system", "developer"):
            content = message.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    ppath = f"{path}.content[{j}]"
                    if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                        kind = part.get("type") if isinstance(part, dict) else None
                        raise InvalidRequest(f"{ppath}.type {kind!r} is not supported here", f"{ppath}.type")
                    if part["text"].strip():
                        system.append(_cache_control(part, {"type": "text", "text": part["text"]}))
            else:
                for text in _text_of(content, f"{path}.content"):
                    if text.strip():
                        system.append({"type": "text", "text": text})
        elif role == "user":
            _append(turns, "user", _named(message, _user_blocks(message.get("content"), f"{path}.content")))
        elif role == "assistant":
            _append(turns, "assistant", _named(message, _assistant_blocks(message, path, legacy_calls)))
        elif role == "tool":
            tool_call_id = message.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise InvalidRequest(f"{path}.tool_call_id is required", f"{path}.tool_call_id")
            _append(turns, "user", [_tool_result(message, tool_call_id, path)])
        elif role == "function":
            # Legacy function calling: the answer to the most recent assistant function_call.
            tool_use_id = legacy_calls[-1] if legacy_calls else new_tool_use_id()
            _append(turns, "user", [_tool_result(message, tool_use_id, path)])
        else:
            raise InvalidRequest(f"{path}.role {role!r} is not supported", f"{path}.role")

    for turn in turns:
        if turn["role"] == "user":
            content = turn["content"]
            # Anthropic wants a turn's tool results before anything else in it.
            if any(b["type"] == "tool_result" for b in content) and content[0]["type"] != "tool_result":
                turn["content"] = [b for b in content if b["type"] == "tool_result"] + [
                    b for b in content if b["type"] != "tool_result"
                ]

    if not turns:
        raise InvalidRequest("messages must hold at least one user or assistant message with content", "messages")

    request: dict[str, Any] = {}
    if "model" in body:
        request["model"] = body["model"]
    request["messages"] = turns
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens") or default_max_tokens

    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            system.append({"type": "text", "text": _JSON_OBJECT_INSTRUCTION})
            request["_response_format"] = response_format  # Gemini: responseMimeType; GPT: as sent
        elif kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict):
                raise InvalidRequest("response_format.json_schema must be an object", "response_format.json_schema")
            # Claude models that enforce the schema get it as output_config.format instead (bedrock_invoke).
            system.append({"type": "text", "text": json_schema_instruction(spec.get("schema", {}))})
            request["_response_format"] = response_format
        elif kind not in ("text", None):
            raise InvalidRequest(f"response_format.type {kind!r} is not supported", "response_format.type")
    if system:
        request["system"] = system

    tools = body.get("tools")
    tool_choice: dict[str, Any] | None = None
    if tools:
        request["tools"] = _tools(tools)
        if body.get("tool_choice") is not None:
            tool_choice = _tool_choice(body["tool_choice"])
            allowed = _allowed_tools(body["tool_choice"])
            if allowed is not None:
                request["tools"] = _only(request["tools"], allowed)
        if body.get("parallel_tool_calls") is False:
            tool_choice = tool_choice or {"type": "auto"}
            if tool_choice["type"] != "none":
                tool_choice["disable_parallel_tool_use"] = True
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
    elif body.get("functions"):
        functions = body["functions"]
        request["tools"] = _tools(
            [{"type": "function", "function": f} for f in functions] if isinstance(functions, list) else functions
        )
        call = body.get("function_call")
        if call == "none":
            request["tool_choice"] = {"type": "none"}
        elif isinstance(call, dict) and isinstance(call.get("name"), str):
            request["tool_choice"] = {"type": "tool", "name": call["name"]}

    temperature = body.get("temperature")
    top_p = body.get("top_p")
    effort = body.get("reasoning_effort")
    thinking: dict[str, Any] | None = None
    if isinstance(body.get("thinking"), dict):
        thinking = body["thinking"]  # an Anthropic-aware client's extra_body, taken as meant
    elif effort == "none":
        # Said out loud: Gemini 2.5 and 3 think unless told not to (Claude does not, and takes this as is).
        thinking = {"type": "disabled"}
    elif effort is not None:
        budget = REASONING_BUDGETS.get(effort) if isinstance(effort, str) else None
        if budget is None:
            raise InvalidRequest(
                "reasoning_effort must be one of none, minimal, low, medium, high, xhigh", "reasoning_effort"
            )
        thinking = {"type": "enabled", "budget_tokens": budget}
    if thinking is not None and thinking.get("type") != "disabled" and tool_choice is not None \
            and tool_choice["type"] in ("any", "tool"):
        thinking = None  # Claude refuses thinking with forced tool use; the forced tool is what was asked for
    if thinking is not None and thinking.get("type") == "enabled":
        # Claude refuses a tool loop continued with thinking on unless the assistant turn that called the
        # tools starts with its (signed) thinking block, which only clients that echo thinking_blocks keep.
        last = next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), None)
        if last and any(b["type"] == "tool_use" for b in last) and last[0]["type"] not in ("thinking", "redacted_thinking"):
            thinking = None
    if thinking is not None and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and max_tokens <= budget:
            max_tokens += budget  # keep the caller's allowance for the answer itself
        temperature = None  # Claude requires the default temperature with thinking on
        if isinstance(top_p, (int, float)) and top_p < 0.95:
            top_p = None
    request["max_tokens"] = max_tokens
    if body.get("max_completion_tokens") is None and body.get("max_tokens") is None:
        request["_max_tokens_default"] = True  # the wire's fitting puts the model's own ceiling here
    if thinking is not None:
        request["thinking"] = thinking
    if temperature is not None:
        request["temperature"] = temperature
    if top_p is not None:
        request["top_p"] = top_p

    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("stop must be a string or an array of strings", "stop")
        stops = [s for s in stops if s]  # whitespace-only ones are Claude's business (model_limits.py)
        if stops:
            request["stop_sequences"] = stops
    sampling = _sampling(body)
    if sampling:
        request["_sampling"] = sampling
    user = body.get("user")
    if isinstance(user, str) and user:
        request["metadata"] = {"user_id": user}
    if "stream" in body:
        request["stream"] = body["stream"]
    return ir.as_request(request)


# --------------------------------------------------------------------------------------------------------
# Responses


def _error_payload(error: Any) -> dict[str, Any]:
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    openai_type = {
        "invalid_request_error": "invalid_request_error",
        "authentication_error": "authentication_error",
        "permission_error": "permission_error",
        "not_found_error": "not_found_error",
        "request_too_large": "invalid_request_error",
        "rate_limit_error": "rate_limit_error",
    }.get(kind or "", "server_error")
    return {
        "error": {
            "message": message if isinstance(message, str) else "upstream error",
            "type": openai_type,
            "param": None,
            "code": kind,
        }
    }


def ir_response_to_chat(
    response: ir.Response, model: str, *, created: int, completion_id: str | None = None
) -> dict[str, Any]:
    """
    An Anthropic Message as an OpenAI C{chat.completion} naming C{model}.

    Text blocks are concatenated (as a stream would have delivered them); server-side tool blocks
    (C{server_tool_use}, C{*_tool_result}) are the upstream's own business and are left out.
    """
    message = ir.as_json(response)  # read defensively: an Anthropic upstream's message passes through as it came
    texts: list[str] = []
    thinking: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    after: dict[str, str] = {}  # the tool call a thinking block follows: {"after": id} (see _interleave)
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            after = {"after": block.get("id") or ""}
            tool_calls.append(
                {
                    "id": block.get("id") or new_tool_use_id(),
                    "type": "function",
                    "function": {
                        "name": block.get("name") or "",
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
            thinking_blocks.append(
                {"type": "thinking", "thinking": block.get("thinking") or "", "signature": block.get("signature") or "",
                 **after}
            )
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data") or "", **after})
    out_message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    if thinking_blocks:
        out_message["reasoning_content"] = "".join(thinking)
        out_message["thinking_blocks"] = thinking_blocks
    usage = Usage.from_anthropic(message.get("usage") or {})
    choice = {
        "index": 0,
        "message": out_message,
        "finish_reason": openai_finish_reason(message.get("stop_reason")),
        "logprobs": {"content": message["_logprobs"], "refusal": None} if "_logprobs" in message else None,
    }
    # More candidates (Gemini's candidateCount for n > 1): each a choice of its own, read the same way.
    more = [ir_response_to_chat(ir.as_response(other), model, created=created)["choices"][0]
            for other in message.get("_more") or () if isinstance(other, dict)]
    return {
        "id": completion_id or chat_id_from_message_id(message.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice] + [{**other, "index": i} for i, other in enumerate(more, 1)],
        "usage": usage.to_openai(),
    }


# --------------------------------------------------------------------------------------------------------
# Streams

_TEXT, _THINKING, _TOOL = 1, 2, 3


#: What follows a content delta's text in a chunk's JSON (L{AnthropicToOpenAIStream._chunk}'s shape).
_CHUNK_SUFFIX = b'},"logprobs":null,"finish_reason":null}]}'
_CHUNK_SUFFIX_USAGE = b'},"logprobs":null,"finish_reason":null}],"usage":null}'


class AnthropicToOpenAIStream:
    """
    Anthropic stream events in, C{chat.completion.chunk} dicts out.

    The first chunk carries C{delta.role}; tool calls are numbered 0, 1, ... in the order their blocks
    start; the finish chunk (empty delta, C{finish_reason}) is sent at C{message_delta}, and with
    C{include_usage} a last chunk with C{choices: []} and the usage follows at C{message_stop} (or
    L{finish}), while every other chunk carries C{usage: null}, as OpenAI does.  An upstream C{error}
    event becomes one C{{"error": {...}}} payload and ends the conversion.  C{[DONE]} is the relay's.

    A stream cut short (L{finish} without C{message_stop}) is closed as if it had stopped normally, with
    the stop reason learnt so far, or C{stop}.
    """

    __slots__ = (
        "model",
        "completion_id",
        "created",
        "include_usage",
        "usage",
        "_blocks",
        "_tools",
        "_started",
        "_finished",
        "_done",
        "_stop_reason",
        "_thinking",
        "_signature",
        "_thought",
        "_templates",
        "_argued",
        "_last_call",
    )

    def __init__(self, model: str, *, completion_id: str, created: int, include_usage: bool) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage
        self.usage: Usage | None = None
        # block index -> kind (_TEXT/_THINKING) or the OpenAI tool call index (>= 0 offset by _TOOL).
        self._blocks: dict[int, int] = {}
        self._tools = 0
        self._started = False
        self._finished = False
        self._done = False
        self._stop_reason: str | None = None
        self._thinking: list[str] = []
        self._signature = ""
        self._thought = 0  # how many thinking_blocks entries were sent
        #: delta key ("content", "reasoning_content") -> the chunk's JSON before and after the text, or None
        #: when the template does not fit (see L{_text_chunk})
        self._templates: dict[str, tuple[bytes, bytes] | None] = {}
        #: OpenAI tool call indices whose arguments have been sent (at least one non-empty fragment)
        self._argued: set[int] = set()
        #: the id of the last tool call started: thinking blocks after it say so (C{after}, see _interleave)
        self._last_call: str | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _text_chunk(self, key: str, text: str) -> dict[str, Any]:
        """
        A chunk whose delta is C{{key: text}}: the hottest event of a stream, rendered from a template
        (see L{Rendered}).
        """
        chunk = self._chunk({key: text})
        try:
            template = self._templates[key]
        except KeyError:
            suffix = _CHUNK_SUFFIX_USAGE if self.include_usage else _CHUNK_SUFFIX
            prefix = split_template(json_text(self._chunk({key: ""})), b'""', suffix)
            template = self._templates[key] = None if prefix is None else (prefix, suffix)
        if template is None:
            return chunk
        return Rendered(chunk, template[0] + json_string(text) + template[1])

    def _start(self, out: list[dict[str, Any]]) -> None:
        self._started = True
        out.append(self._chunk({"role": "assistant", "content": ""}))

    def _learn(self, usage: Any) -> None:
        if isinstance(usage, dict):
            learnt = Usage.from_anthropic(usage)
            self.usage = learnt if self.usage is None else self.usage.merged(learnt)

    def feed(self, ir_event: ir.StreamEvent) -> list[dict[str, Any]]:
        if self._done:
            return []
        event = ir.as_json(ir_event)  # read defensively: an Anthropic upstream's events pass through as they came
        kind = event.get("type")
        out: list[dict[str, Any]] = []
        if kind == "content_block_delta":
            if not self._started:
                self._start(out)
            delta = event.get("delta") or {}
            dkind = delta.get("type")
            slot = self._blocks.get(event.get("index"))  # type: ignore[arg-type]
            if dkind == "text_delta":
                text = delta.get("text")
                if text:
                    out.append(self._text_chunk("content", text) if isinstance(text, str) else
                               self._chunk({"content": text}))
            elif dkind == "input_json_delta":
                fragment = delta.get("partial_json")
                if fragment and slot is not None and slot >= _TOOL:
                    self._argued.add(slot - _TOOL)
                    out.append(
                        self._chunk({"tool_calls": [{"index": slot - _TOOL, "function": {"arguments": fragment}}]})
                    )
            elif dkind == "thinking_delta":
                text = delta.get("thinking")
                if text:
                    self._thinking.append(text)
                    out.append(self._text_chunk("reasoning_content", text) if isinstance(text, str) else
                               self._chunk({"reasoning_content": text}))
            elif dkind == "signature_delta":
                self._signature = delta.get("signature") or self._signature  # replaces, as the SDKs do
            return out
        if kind == "content_block_start":
            if not self._started:
                self._start(out)
            index = event.get("index")
            block = event.get("content_block") or {}
            bkind = block.get("type")
            if bkind == "text":
                self._blocks[index] = _TEXT  # type: ignore[index]
                if block.get("text"):
                    out.append(self._chunk({"content": block["text"]}))
            elif bkind == "tool_use":
                number = self._tools
                self._tools += 1
                self._blocks[index] = _TOOL + number  # type: ignore[index]
                function: dict[str, Any] = {"name": block.get("name") or "", "arguments": ""}
                call_id = str(block.get("id") or new_tool_use_id())
                call = {"index": number, "id": call_id, "type": "function", "function": function}
                self._last_call = call_id
                out.append(self._chunk({"tool_calls": [call]}))
                if block.get("input"):
                    # Converters that know the whole input up front (Gemini) put it on the start.
                    self._argued.add(number)
                    out.append(
                        self._chunk(
                            {"tool_calls": [{"index": number, "function": {"arguments": json.dumps(block["input"], ensure_ascii=False)}}]}
                        )
                    )
            elif bkind == "thinking":
                self._blocks[index] = _THINKING  # type: ignore[index]
                self._thinking = []
                self._signature = block.get("signature") or ""
                if block.get("thinking"):
                    self._thinking.append(block["thinking"])
                    out.append(self._chunk({"reasoning_content": block["thinking"]}))
            elif bkind == "redacted_thinking":
                entry = {"index": self._thought, "type": "redacted_thinking", "data": block.get("data") or ""}
                if self._last_call is not None:
                    entry["after"] = self._last_call
                self._thought += 1
                out.append(self._chunk({"thinking_blocks": [entry]}))
            return out
        if kind == "content_block_stop":
            slot = self._blocks.get(event.get("index"))  # type: ignore[arg-type]
            if slot is not None and slot >= _TOOL and slot - _TOOL not in self._argued:
                # A call without arguments (Claude streams no input_json_delta for {}): clients JSON-parse
                # the accumulated arguments, so they get "{}" as the whole-response path gives them.
                self._argued.add(slot - _TOOL)
                out.append(self._chunk({"tool_calls": [{"index": slot - _TOOL, "function": {"arguments": "{}"}}]}))
            if slot == _THINKING:
                thinking = "".join(self._thinking)
                if thinking or self._signature:
                    entry = {"index": self._thought, "type": "thinking", "thinking": thinking, "signature": self._signature}
                    if self._last_call is not None:
                        entry["after"] = self._last_call
                    out.append(self._chunk({"thinking_blocks": [entry]}))
                    self._thought += 1
                self._thinking = []
                self._signature = ""
            return out
        if kind == "message_start":
            message = event.get("message") or {}
            self._learn(message.get("usage"))
            if not self._started:
                self._start(out)
            return out
        if kind == "message_delta":
            self._learn(event.get("usage"))
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            if stop_reason is not None:
                self._stop_reason = stop_reason
                if not self._finished:
                    if not self._started:
                        self._start(out)
                    self._finished = True
                    out.append(self._chunk({}, openai_finish_reason(stop_reason)))
            return out
        if kind == "message_stop":
            return self._close(out)
        if kind == "error":
            self._done = True
            return [_error_payload(event.get("error"))]
        return out  # ping and whatever Anthropic adds next

    def _close(self, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self._started:
            self._start(out)
        if not self._finished:
            self._finished = True
            out.append(self._chunk({}, openai_finish_reason(self._stop_reason)))
        if self.include_usage:
            out.append(
                {
                    "id": self.completion_id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": (self.usage or Usage()).to_openai(),
                }
            )
        self._done = True
        return out

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        return self._close([])


#: Gateway error kind -> OpenAI's error type.
ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "method_not_allowed": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "service_unavailable",
    "timeout": "timeout",
}


def openai_error_body(error: GatewayError) -> dict[str, Any]:
    """
    C{error} as OpenAI's C{{"error": {...}}}, the shape every OpenAI dialect (chat, responses) answers with.
    """
    return {"error": {"message": error.message, "type": ERROR_TYPES.get(error.kind, "api_error"),
                      "param": error.param, "code": error.code}}


@implementer(IClientCall)
class OpenAIChatCall:
    """
    One Chat Completions request: its IR (converted once, when first asked for), the ids its answer carries.
    """

    __slots__ = ("body", "model", "stream", "include_usage", "created", "completion_id", "_ir", "_prompt")

    def __init__(self, body: dict[str, Any], model: str, *, always_include_usage: bool, created: int) -> None:
        self.body = body
        self.model = model
        self.stream = bool(body.get("stream"))
        options = body.get("stream_options")
        self.include_usage = always_include_usage or bool(isinstance(options, dict) and options.get("include_usage"))
        self.created = created
        self.completion_id = "chatcmpl-" + random_hex(24)
        self._ir: IRRequest | None = None
        self._prompt: int | None = None

    def ir(self) -> IRRequest:
        if self._ir is None:
            self._ir = chat_request_to_ir(self.body)
        return self._ir

    def response_from_ir(self, message: IRResponse) -> dict[str, Any]:
        return ir_response_to_chat(message, self.model, created=self.created, completion_id=self.completion_id)

    def stream_from_ir(self) -> list[Any]:
        return [AnthropicToOpenAIStream(self.model, completion_id=self.completion_id, created=self.created,
                                        include_usage=self.include_usage)]

    def prompt_tokens(self, family: str) -> int:
        if self._prompt is not None:
            return self._prompt
        return estimate_prompt(count_tokens, self._ir, family) if self._ir is not None \
            else estimate_prompt(count_chat_tokens, self.body, family)

    def committed(self, family: str) -> None:
        if self._prompt is None:
            self._prompt = sketch_tokens(self.body, family)
        self.body, self._ir = {}, None


@implementer(IClientAPI)
class OpenAIChatAPI:
    """
    The OpenAI Chat Completions dialect (L{sapproxy.interfaces.IClientAPI}): GPT deployments speak it natively.
    """

    name = "openai"
    input_tokens_at_start = False
    native_wire = "openai_chat"
    done = DONE
    keepalive = KEEPALIVE_COMMENT

    def call(self, body: dict[str, Any], model: str, hints: dict[str, Any]) -> OpenAIChatCall:
        return OpenAIChatCall(body, model, always_include_usage=bool(hints.get("always_include_usage")),
                              created=int(time.time()))

    #: The framing itself, not a method that calls it: one call less per event, and the stream pipeline knows
    #: it (its pass-through lane writes the same framing).
    encode = staticmethod(encode_data)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return openai_error_body(error)

    def error_event(self, error: GatewayError) -> bytes:
        return encode_data(openai_error_body(error))

    def prompt_tokens(self, body: dict[str, Any], family: str) -> int:
        return estimate_prompt(count_chat_tokens, body, family)


CLIENT_API = OpenAIChatAPI()
