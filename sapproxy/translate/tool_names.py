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

Gemini also takes C{enum} values only as strings, so a schema's C{enum: [1, 2]} goes as C{["1", "2"]} and
the model answers C{"1"}; for such tools L{ToolNames} turns the answer's strings back into the schema's
own values (L{restore_enum_values}).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from attrs import frozen

from sapproxy.translate import ir as irtypes

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

#: Upstream kind -> its rule.  The kinds: C{openai} (Azure or any OpenAI-compatible chat), C{gemini},
#: C{converse}, C{invoke} (Bedrock), C{anthropic} (Anthropic's own API).
RULES: dict[str, NameRule] = {
    "openai": NameRule(_WORD, None, 64),
    "gemini": NameRule("[A-Za-z0-9_.:-]", "A-Za-z_", 64),
    "converse": NameRule(_WORD, None, 64),
    "invoke": NameRule(_WORD, None, 128),
    "anthropic": NameRule(_WORD, None, 128),
}


class ToolNames:
    """
    The client's tool names of one request and the upstream names they went out as; reads the upstream's
    names back, and, for tools whose schema the upstream could only take with enum values as strings
    (Gemini), the arguments' typed values (see L{restore_enum_values}).
    """

    __slots__ = ("_back", "_enums")

    def __init__(self) -> None:
        self._back: dict[str, str] = {}
        #: client tool name -> its input schema, for tools with non-string enum or const values
        self._enums: dict[str, dict[str, Any]] = {}

    def note(self, client: str, upstream: str) -> None:
        if client != upstream:
            self._back[upstream] = client

    def note_typed_enums(self, client: str, schema: dict[str, Any]) -> None:
        self._enums[client] = schema

    @property
    def renamed(self) -> bool:
        """Whether anything in an answer may need restoring (L{restorer} is only needed then)."""
        return bool(self._back or self._enums)

    def restore_input(self, client: str, arguments: Any) -> Any:
        schema = self._enums.get(client)
        return arguments if schema is None else restore_enum_values(arguments, schema)

    def client_name(self, upstream: str) -> str:
        """The client's name for C{upstream} (unknown names, and names that were not rewritten, as they are)."""
        return self._back.get(upstream, upstream)

    def restore_message(self, message: irtypes.Response) -> irtypes.Response:
        """An IR message with the client's names (and typed enum values) in its C{tool_use} blocks (in
        place, returned)."""
        if self.renamed:
            for block in irtypes.as_json(message).get("content") or ():
                if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                    block["name"] = self.client_name(block["name"])
                    if "input" in block:
                        block["input"] = self.restore_input(block["name"], block["input"])
        return message

    def restorer(self) -> "ToolNameRestorer":
        return ToolNameRestorer(self)


class ToolNameRestorer:
    """
    A stream translator on IR events: the client's name on each C{tool_use} block start, and typed enum
    values in its input (the Gemini converter sends a call's whole input as one C{input_json_delta}).
    Placed right after the upstream's converter, before the client's.
    """

    __slots__ = ("_names", "_typed")

    def __init__(self, names: ToolNames) -> None:
        self._names = names
        self._typed: dict[Any, str] = {}  # block index -> client tool name, for tools with typed enums

    def feed(self, event: Any) -> list[Any]:
        if not isinstance(event, dict):
            return [event]
        kind = event.get("type")
        if kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                name = self._names.client_name(block["name"])
                if name in self._names._enums:
                    self._typed[event.get("index")] = name
                if name != block["name"]:
                    return [{**event, "content_block": {**block, "name": name}}]
        elif kind == "content_block_delta" and event.get("index") in self._typed:
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "input_json_delta":
                try:
                    arguments = json.loads(delta.get("partial_json") or "")
                except ValueError:
                    return [event]  # a fragment, not a whole input: left as it is
                restored = self._names.restore_input(self._typed[event["index"]], arguments)
                text = json.dumps(restored, ensure_ascii=False)
                return [{**event, "delta": {**delta, "partial_json": text}}]
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
    if upstream == "gemini" and isinstance(tools, list):
        for tool in tools:
            if _is_client_tool(tool) and isinstance(tool.get("name"), str) and has_typed_enums(tool.get("input_schema")):
                names.note_typed_enums(tool["name"], tool["input_schema"])
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


def has_typed_enums(schema: Any, depth: int = 0) -> bool:
    """Whether a JSON schema holds an C{enum} or C{const} with a value that is not a string."""
    if depth > 32:
        return False
    if isinstance(schema, dict):
        if "const" in schema and not isinstance(schema["const"], str):
            return True
        if isinstance(schema.get("enum"), list) and any(v is not None and not isinstance(v, str) for v in schema["enum"]):
            return True
        return any(has_typed_enums(v, depth + 1) for k, v in schema.items() if k not in ("enum", "const"))
    if isinstance(schema, list):
        return any(has_typed_enums(v, depth + 1) for v in schema)
    return False


def restore_enum_values(value: Any, schema: Any, depth: int = 0) -> Any:
    """
    C{value} (a tool call's arguments from Gemini) with each string that stands for a non-string C{enum}
    or C{const} value of C{schema} turned back into that value: Gemini's schema takes enum values only as
    strings (L{sapproxy.translate.wire.gemini.schema.clean_schema} sends C{1} as C{"1"}), and answers with
    the string.  Follows C{properties}, C{items}, C{anyOf}/C{oneOf}/C{allOf} and local C{$ref}s.
    """
    return _restore(value, schema, schema, depth)


def _restore(value: Any, schema: Any, root: Any, depth: int) -> Any:
    if depth > 32 or not isinstance(schema, dict):
        return value
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for piece in ref[2:].split("/"):
            node = node.get(piece.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        return _restore(value, node, root, depth + 1)
    if isinstance(value, str):
        candidates = list(schema.get("enum") or []) if isinstance(schema.get("enum"), list) else []
        if "const" in schema:
            candidates.append(schema["const"])
        for candidate in candidates:
            if not isinstance(candidate, str) and json.dumps(candidate) == value:
                return candidate
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key) or ():
            restored = _restore(value, option, root, depth + 1)
            if restored is not value:
                return restored
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props = schema["properties"]
        return {k: _restore(v, props.get(k), root, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_restore(v, schema["items"], root, depth + 1) for v in value]
    return value
