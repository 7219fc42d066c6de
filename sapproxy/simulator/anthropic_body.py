"""
Reading and validating an Anthropic Messages request body as Bedrock's InvokeModel accepts it.

Bedrock validates the body against a JSON schema first (unknown keys, C{model}, C{stream}, a missing
C{anthropic_version} are "Malformed input request" errors) and then passes the model's own 400s through
as "The model returned the following errors: ...".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .plan import ToolSpec
from .shape import NUMBER, check

_BLOCK = {"type": str, "text": str, "id": str, "name": str, "input": dict, "tool_use_id": str,
          "content": (str, [{"type": str, "text": str}])}
#: The JSON types of the fields the simulator reads.
BODY_SPEC = {
    "anthropic_version": str, "anthropic_beta": [str], "max_tokens": int,
    "messages": [{"role": str, "content": (str, [_BLOCK])}], "system": (str, [{"type": str, "text": str}]),
    "stop_sequences": [str], "temperature": NUMBER, "top_p": NUMBER, "top_k": int,
    "tools": [{"name": str, "description": str, "input_schema": dict, "type": str}],
    "tool_choice": {"type": str, "name": str}, "thinking": {"type": str, "budget_tokens": int},
}


def json_pointer(path: str) -> str:
    """C{messages[0].content} as Bedrock's schema errors spell it: C{#/messages/0/content}."""
    return "#/" + path.replace("[", "/").replace("]", "").replace(".", "/") if path else "#"

ANTHROPIC_VERSION = "bedrock-2023-05-31"
ALLOWED_KEYS = frozenset({
    "anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "stop_sequences", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "thinking", "metadata", "context_management", "output_config",
})
#: Betas Bedrock's InvokeModel accepts for Claude (AWS docs, as collected by LiteLLM's allow-list).
BEDROCK_BETAS = frozenset({
    "computer-use-2024-10-22", "computer-use-2025-01-24", "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14", "output-128k-2025-02-19", "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07", "context-management-2025-06-27", "effort-2025-11-24",
    "tool-search-tool-2025-10-19", "tool-examples-2025-10-29", "fine-grained-tool-streaming-2025-05-14",
})
TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control", "type", "input_examples"})


def schema_errors(body: Any) -> str | None:
    """Bedrock's own schema check of the body: the "Malformed input request" message, or None."""
    if not isinstance(body, Mapping):
        return "Malformed input request: #: expected type: JSONObject, found: " + type(body).__name__ + \
            ", please reformat your input and try again."
    errors: list[str] = []
    if "messages" not in body:
        errors.append('#: subject must not be valid against schema {"required":["messages"]}')
    if "anthropic_version" not in body:
        errors.append("#: required key [anthropic_version] not found")
    elif body["anthropic_version"] != ANTHROPIC_VERSION:
        errors.append(f"#/anthropic_version: {body['anthropic_version']} is not a valid enum value")
    if "max_tokens" not in body:
        errors.append("#: required key [max_tokens] not found")
    elif not isinstance(body["max_tokens"], int) or isinstance(body["max_tokens"], bool):
        errors.append(f"#/max_tokens: expected type: Integer, found: {type(body['max_tokens']).__name__}")
    for key in body:
        if key not in ALLOWED_KEYS:
            errors.append(f"#: extraneous key [{key}] is not permitted")
    mismatch = check(body, BODY_SPEC)
    if mismatch is not None and not errors:
        path, expected = mismatch
        errors.append(f"{json_pointer(path)}: expected type: {expected}")
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            if isinstance(tool, Mapping):
                for key in tool:
                    if key not in TOOL_KEYS:
                        errors.append(f"#/tools/{i}: extraneous key [{key}] is not permitted")
    if not errors:
        return None
    return "Malformed input request: " + "".join(errors) + ", please reformat your input and try again."


def model_errors(body: Mapping[str, Any]) -> str | None:
    """The model's own validation (Anthropic's messages), as Bedrock relays it."""
    betas = body.get("anthropic_beta")
    if betas is not None:
        if not isinstance(betas, list) or any(not isinstance(b, str) or b not in BEDROCK_BETAS for b in betas):
            return "invalid beta flag"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous = None
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        role = message["role"]
        if role == previous:
            return (f'messages: roles must alternate between "user" and "assistant", but found multiple '
                    f'"{role}" roles in a row')
        previous = role
        content = message.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            if not content and not (last and role == "assistant"):
                return ("messages: all messages must have non-empty content except for the optional final "
                        "assistant message")
        elif isinstance(content, list):
            if not content and not (last and role == "assistant"):
                return ("messages: all messages must have non-empty content except for the optional final "
                        "assistant message")
            for j, block in enumerate(content):
                if not isinstance(block, Mapping) or "type" not in block:
                    return f"messages.{i}.content.{j}.type: Field required"
                if block["type"] == "text" and not block.get("text"):
                    return "messages: text content blocks must be non-empty"
        else:
            return f"messages.{i}.content: Input should be a valid list"
    if isinstance(body.get("system"), list):
        for block in body["system"]:
            if isinstance(block, Mapping) and block.get("type") == "text" and not block.get("text"):
                return "system: text content blocks must be non-empty"
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int):
            return "thinking.enabled.budget_tokens: Field required"
        if budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return ("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
                    "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-"
                    "window-size")
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation " \
                   "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping) or not tool.get("name"):
                return f"tools.{i}.custom.name: Field required"
            if "type" not in tool and "input_schema" not in tool:
                return f"tools.{i}.custom.input_schema: Field required"
    return None


def user_text(body: Any) -> str:
    """The text of the last user turn (empty when that turn holds only tool results)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return ""
    for message in reversed(body["messages"]):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(b.get("text", "") for b in content
                               if isinstance(b, Mapping) and b.get("type") == "text"
                               and isinstance(b.get("text"), str))
            return ""
    return ""


def tool_result(body: Mapping[str, Any]) -> str | None:
    """The text of the tool results in the last user turn, or None when it has none."""
    last = body["messages"][-1]
    content = last.get("content") if last.get("role") == "user" else None
    if not isinstance(content, list):
        return None
    results = [b for b in content if isinstance(b, Mapping) and b.get("type") == "tool_result"]
    if not results:
        return None
    out = []
    for r in results:
        c = r.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(b.get("text", "") for b in c if isinstance(b, Mapping) and b.get("type") == "text")
    return " ".join(out)


def offered_tools(body: Mapping[str, Any]) -> tuple[list[ToolSpec], str | None]:
    """The tools the reply may call (none for tool_choice none) and the one it must call, if forced."""
    tools = [ToolSpec(t["name"], t.get("input_schema", {})) for t in body.get("tools") or []
             if isinstance(t, Mapping) and "name" in t]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        if choice.get("type") == "none":
            return [], None
        if choice.get("type") == "tool":
            return tools, choice.get("name")
    return tools, None


def has_cache_control(body: Mapping[str, Any]) -> bool:
    def walk(value: Any) -> bool:
        if isinstance(value, Mapping):
            return "cache_control" in value or any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return False
    return walk(body.get("system")) or walk(body.get("messages")) or walk(body.get("tools"))
