"""
Tool names each upstream accepts, and a reversible mapping from the client's names to them.

Clients name tools as their own API allows: Anthropic clients send MCP tools such as
C{mcp__server__a_rather_long_tool_name...} (up to 128 characters, dots from some MCP servers), OpenAI
clients may start a name with a digit or a dash.  Upstreams are stricter, and refuse the whole request:

  - OpenAI (Azure) function names: C{^[a-zA-Z0-9_-]{1,64}$};
  - Gemini function declarations: a letter or C{_} first, then C{[A-Za-z0-9_.:-]}, at most 64;
  - Bedrock Converse C{toolSpec.name}: C{^[a-zA-Z0-9_-]{1,64}$};
  - Claude (Bedrock InvokeModel): C{^[a-zA-Z0-9_-]{1,128}$}.

A name the upstream accepts goes as it is.  Any other name is rewritten deterministically: every character
the upstream refuses becomes C{_}, a C{_} is put first where the first character may not start a name, and
the result is cut to leave room for C{_} and the first 8 hex digits of the SHA-256 of the client's name.
Being a pure function of the name, the same client name maps to the same upstream name in every request,
so the tool calls of earlier turns (in the history) match the tools of this one; the hash keeps two
client names that differ only in refused characters apart.  L{ToolNames} remembers the pairs seen in one
request, and gives the client back its own name in every tool call of the answer.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from attrs import frozen

__all__ = ["NameRule", "RULES", "ToolNames", "encode_tool_names"]


@frozen
class NameRule:
    """
    @ivar allowed: one character the upstream accepts in a name.
    @ivar first: the characters a name may start with, or None when any allowed character may.
    @ivar longest: the longest name the upstream accepts.
    """

    allowed: str
    first: str | None
    longest: int

    def accepts(self, name: str) -> bool:
        first = f"[{self.first}]" if self.first else self.allowed
        rest = f"{self.allowed}{{0,{self.longest - 1}}}"
        return re.fullmatch(first + rest, name) is not None

    def encode(self, name: str) -> str:
        """The upstream name for C{name}: itself when accepted, else the rewriting of the module docstring."""
        if self.accepts(name):
            return name
        cleaned = re.sub(f"(?!{self.allowed}).", "_", name, flags=re.DOTALL)
        if self.first and not re.match(f"[{self.first}]", cleaned):
            cleaned = "_" + cleaned
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        return cleaned[: self.longest - 9] + "_" + digest


_WORD = "[A-Za-z0-9_-]"

#: Upstream kind -> its rule.  The kinds: C{openai} (Azure chat), C{gemini}, C{converse}, C{invoke}.
RULES: dict[str, NameRule] = {
    "openai": NameRule(_WORD, None, 64),
    "gemini": NameRule("[A-Za-z0-9_.:-]", "A-Za-z_", 64),
    "converse": NameRule(_WORD, None, 64),
    "invoke": NameRule(_WORD, None, 128),
}


class ToolNames:
    """
    The client's tool names of one request and the upstream names they went out as; reads the upstream's
    names back.
    """

    __slots__ = ("_back",)

    def __init__(self) -> None:
        self._back: dict[str, str] = {}

    def note(self, client: str, upstream: str) -> None:
        if client != upstream:
            self._back[upstream] = client

    @property
    def renamed(self) -> bool:
        return bool(self._back)

    def client_name(self, upstream: str) -> str:
        """The client's name for C{upstream} (unknown names, and names that were not rewritten, as they are)."""
        return self._back.get(upstream, upstream)

    def restore_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """An IR message with the client's names in its C{tool_use} blocks (in place, returned)."""
        if self._back:
            for block in message.get("content") or ():
                if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                    block["name"] = self.client_name(block["name"])
        return message

    def restorer(self) -> "ToolNameRestorer":
        return ToolNameRestorer(self)


class ToolNameRestorer:
    """
    A stream translator on IR events: the client's name on each C{tool_use} block start.  Placed right
    after the upstream's converter, before the client's.
    """

    __slots__ = ("_names",)

    def __init__(self, names: ToolNames) -> None:
        self._names = names

    def feed(self, event: Any) -> list[Any]:
        if isinstance(event, dict) and event.get("type") == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                name = self._names.client_name(block["name"])
                if name != block["name"]:
                    return [{**event, "content_block": {**block, "name": name}}]
        return [event]

    def finish(self) -> list[Any]:
        return []


def _is_client_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") in (None, "custom", "function")


def encode_tool_names(ir: dict[str, Any], upstream: str) -> tuple[dict[str, Any], ToolNames]:
    """
    C{ir} (an IR request; not mutated) with every client tool's name, the C{tool_use} names of its history
    and a C{tool_choice} name made acceptable to C{upstream} (a key of L{RULES}), and the mapping back.

    Anthropic-defined tools (C{type} such as C{bash_20250124}) keep their fixed names: the upstreams that
    run them know them by those names.
    """
    names = ToolNames()
    rule = RULES[upstream]

    def rename(name: Any) -> Any:
        if not isinstance(name, str) or not name:
            return name
        encoded = rule.encode(name)
        names.note(name, encoded)
        return encoded

    out = dict(ir)
    tools = ir.get("tools")
    if isinstance(tools, list):
        out["tools"] = [{**t, "name": rename(t.get("name"))} if _is_client_tool(t) and "name" in t else t
                        for t in tools]
    choice = ir.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and "name" in choice:
        out["tool_choice"] = {**choice, "name": rename(choice["name"])}
    messages = ir.get("messages")
    if isinstance(messages, list):
        rewritten: list[Any] = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list) and any(
                    isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
                content = [{**b, "name": rename(b.get("name"))}
                           if isinstance(b, dict) and b.get("type") == "tool_use" and "name" in b else b
                           for b in content]
                message = {**message, "content": content}
            rewritten.append(message)
        out["messages"] = rewritten
    return out, names
