"""
Which tools an upstream can run: one rule for every model family.

Anthropic clients offer three kinds of tools:

  - client tools (no C{type}, or C{custom}): the client runs them; every upstream takes them.
  - Anthropic-defined client tools (C{bash_*}, C{text_editor_*}, C{computer_*}): the client runs them, but
    the model knows their schema by their C{type}.  Claude (Bedrock InvokeModel) takes them as they are.
    For GPT, Gemini and Converse the bash and text editor tools become ordinary function tools under the
    same name with the input schema Anthropic documents for them, so the model can still call them and
    the client still runs them; the computer tool (screenshots, coordinates on a display the model was
    trained on) has no faithful equivalent and is dropped.
  - server tools (C{web_search_*}, C{web_fetch_*}, C{code_execution_*}, C{memory_*}, MCP toolsets, ...):
    Anthropic's own servers run them.  No upstream here runs them (Bedrock included): dropped.

What is dropped is named by L{fit_tools} so the gateway can say so (a log line and the
C{x-sapproxy-dropped-tools} response header); a C{tool_choice} that forced a dropped tool becomes
C{auto}, and no C{tool_choice} is sent when no tool is left.  The history's blocks from server tools
(C{server_tool_use}, C{web_search_tool_result}, ...) are dropped with them: no upstream but Anthropic's can
read them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fit_tools", "TYPED_CLIENT_TOOL_PREFIXES"]

TYPED_CLIENT_TOOL_PREFIXES = ("bash_", "text_editor_", "computer_")

_BASH_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The bash command to run."},
        "restart": {"type": "boolean", "description": "Restart the bash session instead of running a command."},
    },
}
_EDITOR_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                    "description": "The operation."},
        "path": {"type": "string", "description": "Absolute path of the file or directory."},
        "file_text": {"type": "string", "description": "For create: the whole content of the new file."},
        "old_str": {"type": "string", "description": "For str_replace: the exact text to replace (unique)."},
        "new_str": {"type": "string", "description": "For str_replace: the new text; for insert: the text to insert."},
        "insert_line": {"type": "integer", "description": "For insert: the line after which to insert."},
        "view_range": {"type": "array", "items": {"type": "integer"},
                       "description": "For view: [first line, last line], -1 for the end."},
    },
    "required": ["command", "path"],
}
_DESCRIPTIONS = {
    "bash_": ("Run commands in a persistent bash shell; the output is returned.", _BASH_SCHEMA),
    "text_editor_": ("View, create and edit text files: view, create, str_replace, insert (and undo_edit).",
                     _EDITOR_SCHEMA),
}

#: History blocks that only Anthropic's own servers produce and read.
_SERVER_BLOCKS = frozenset({
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "tool_search_tool_result",
    "mcp_tool_use", "mcp_tool_result", "container_upload",
})


def _typed_prefix(kind: str) -> str | None:
    return next((p for p in TYPED_CLIENT_TOOL_PREFIXES if kind.startswith(p)), None)


def _label(tool: dict[str, Any]) -> str:
    kind, name = tool.get("type"), tool.get("name")
    return f"{name} ({kind})" if isinstance(name, str) and name else str(kind)


def fit_tools(ir: dict[str, Any], upstream: str) -> tuple[dict[str, Any], list[str]]:
    """
    C{ir} (not mutated) with only the tools C{upstream} (C{openai}, C{gemini}, C{converse}, C{invoke}) can
    run, by the rule of the module docstring, and the labels (C{name (type)}) of the tools dropped.
    """
    tools = ir.get("tools")
    if not isinstance(tools, list) or upstream == "anthropic":
        return ir, []  # Anthropic's own API runs every tool an Anthropic client can name
    kept: list[Any] = []
    dropped: list[str] = []
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or kind in (None, "custom", "function"):
            kept.append(tool)
            continue
        prefix = _typed_prefix(kind) if isinstance(kind, str) else None
        if prefix is not None and upstream == "invoke":
            kept.append(tool)
        elif prefix in _DESCRIPTIONS:
            description, schema = _DESCRIPTIONS[prefix]  # type: ignore[index]
            converted: dict[str, Any] = {"name": tool.get("name"), "description": description, "input_schema": schema}
            if tool.get("cache_control") is not None:
                converted["cache_control"] = tool["cache_control"]
            kept.append(converted)
        else:
            dropped.append(_label(tool))
    if not dropped and upstream == "invoke":
        return ir, []
    out = dict(ir)
    if kept:
        out["tools"] = kept
    else:
        out.pop("tools", None)
    choice = ir.get("tool_choice")
    if isinstance(choice, dict):
        names = {t.get("name") for t in kept if isinstance(t, dict)}
        if not kept:
            out.pop("tool_choice", None)
        elif choice.get("type") == "tool" and choice.get("name") not in names:
            out["tool_choice"] = {k: v for k, v in choice.items() if k not in ("type", "name")} | {"type": "auto"}
    if upstream != "invoke" and isinstance(ir.get("messages"), list):
        out["messages"] = [_without_server_blocks(m) for m in ir["messages"]]
    return out, dropped


def _without_server_blocks(message: Any) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    cleaned = [b for b in content if not (isinstance(b, dict) and b.get("type") in _SERVER_BLOCKS)]
    return message if len(cleaned) == len(content) else {**message, "content": cleaned}


def search_results_as_text(ir: dict[str, Any]) -> dict[str, Any]:
    """
    C{ir} (not mutated) with every C{search_result} block (in a message or in a tool result) as a text block:
    Claude reads them as citable sources, other models have no such block, and its text is what they need.
    """
    messages = ir.get("messages")
    if not isinstance(messages, list) or not any(_has_search_result(m) for m in messages):
        return ir
    return {**ir, "messages": [_search_results_in(m) for m in messages]}


def _has_search_result(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return False
    for block in content:
        if isinstance(block, dict):
            if block.get("type") == "search_result":
                return True
            inner = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(inner, list) and any(isinstance(b, dict) and b.get("type") == "search_result" for b in inner):
                return True
    return False


def _search_result_text(block: dict[str, Any]) -> dict[str, Any]:
    texts = [part.get("text") for part in block.get("content") or () if isinstance(part, dict)
             and isinstance(part.get("text"), str)]
    head = " — ".join(str(x) for x in (block.get("title"), block.get("source")) if isinstance(x, str) and x)
    body = "\n".join(t for t in texts if t)
    return {"type": "text", "text": f"Search result: {head}\n{body}" if head else body or "(empty search result)"}


def _search_results_in(message: Any) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    out: list[Any] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "search_result":
            out.append(_search_result_text(block))
        elif isinstance(block, dict) and block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            inner = [_search_result_text(b) if isinstance(b, dict) and b.get("type") == "search_result" else b
                     for b in block["content"]]
            out.append({**block, "content": inner})
        else:
            out.append(block)
    return {**message, "content": out}
