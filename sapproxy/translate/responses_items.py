"""
What the OpenAI Responses API has and no upstream here takes: its tool kinds, its tool-call item kinds and
opaque reasoning.  Shared by the client API (Claude and Gemini through the IR) and the native GPT wire format
(SAP AI Core's GPT deployments answer C{/responses} themselves but accept only C{function} tools).

Tools.  Every tool the client declares is either sent upstream as a plain function or dropped:

  - C{function}: as it is (C{strict} kept);
  - C{custom} (freeform, e.g. Codex's C{apply_patch}): a function with one string argument C{input}; its
    grammar, if any, goes into the description so the model still knows the syntax.  A call comes back as a
    C{custom_tool_call} whose C{input} is that string;
  - C{namespace} (Codex's C{multi_agent_v1}): each inner function as C{<namespace>__<name>}; a call comes back
    as a C{function_call} with the inner C{name} and the C{namespace} field;
  - C{local_shell}: a function C{local_shell} taking the exec action (C{command}, C{workdir}, C{timeout_ms},
    C{env}); a call comes back as a C{local_shell_call} with C{action: {"type": "exec", ...}};
  - anything else (C{web_search}, C{image_generation}, C{file_search}, C{mcp}, C{tool_search}, computer use,
    ...) is hosted by OpenAI itself: dropped, and named in L{ToolMap.dropped} so the route logs one line.

A C{tool_choice} that names a dropped tool becomes C{auto}; one that requires a tool when none is left is
dropped.  The same mapping turns the client's own history items (C{custom_tool_call},
C{local_shell_call}, namespaced C{function_call}s) into plain function calls for the upstream.

Reasoning.  Claude's signed thinking blocks and Gemini's thought signatures (both IR thinking blocks) reach
the client as C{reasoning} items whose C{encrypted_content} is L{pack_reasoning} of the blocks: opaque to the
client, and unpacked byte for byte when it sends the item back.  Encrypted content that is not ours (GPT's
own) is kept for GPT and dropped for other families, which could not read it.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from attrs import field, frozen

from sapproxy.translate.errors import InvalidRequest

__all__ = [
    "LOCAL_SHELL",
    "ToolMap",
    "map_tools",
    "pack_reasoning",
    "unpack_reasoning",
]

#: Input items that stand for work OpenAI's own hosted tools did: nothing an upstream here could take, dropped.
HOSTED_ITEMS = frozenset(("web_search_call", "file_search_call", "computer_call", "computer_call_output",
                          "image_generation_call", "code_interpreter_call", "mcp_call", "mcp_list_tools",
                          "mcp_approval_request", "mcp_approval_response", "tool_search_call", "tool_search_output",
                          "compaction", "shell_call", "shell_call_output", "apply_patch_call",
                          "apply_patch_call_output"))

#: The function that stands for the C{local_shell} tool.
LOCAL_SHELL = "local_shell"
_NS_SEP = "__"
_REASONING_PREFIX = "sapproxy.r1."
_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

_LOCAL_SHELL_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
        "workdir": {"type": "string", "description": "The working directory to run the command in."},
        "timeout_ms": {"type": "integer", "description": "How long the command may run, in milliseconds."},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["command"],
}


def _custom_schema(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": description}},
        "required": ["input"],
        "additionalProperties": False,
    }


@frozen
class ToolMap:
    """
    The client's tools as the upstream sees them, and the way back.

    @ivar functions: the upstream's tools, each a Responses C{function} tool
        (C{{"type": "function", "name", "description"?, "parameters", "strict"?}}).
    @ivar custom: function names that stand for C{custom} tools.
    @ivar namespaced: function name -> (namespace, inner name).
    @ivar local_shell: whether the C{local_shell} function stands for the local_shell tool.
    @ivar dropped: the tool types dropped (for one log line), in the order first seen.
    @ivar tool_choice: the client's C{tool_choice} fixed up for C{functions} (Responses shape), or None.
    """

    functions: list[dict[str, Any]] = field(factory=list)
    custom: frozenset[str] = frozenset()
    namespaced: dict[str, tuple[str, str]] = field(factory=dict)
    local_shell: bool = False
    dropped: tuple[str, ...] = ()
    tool_choice: Any = None

    # ----------------------------------------------------------------------------------------------------
    # Upstream function call -> client item

    def kind_of(self, name: str) -> str:
        """C{custom}, C{local_shell}, C{namespace} or C{function}: what a call of C{name} is for the client."""
        if name in self.custom:
            return "custom"
        if self.local_shell and name == LOCAL_SHELL:
            return "local_shell"
        if name in self.namespaced:
            return "namespace"
        return "function"

    def call_item(self, name: str, call_id: str, arguments: str, item_id: str, status: str = "completed") -> dict[str, Any]:
        """
        The client's output item for an upstream call of function C{name} with JSON C{arguments}.
        """
        kind = self.kind_of(name)
        if kind == "custom":
            return {"id": _item_id(item_id, "ctc_"), "type": "custom_tool_call", "status": status, "call_id": call_id,
                    "name": name, "input": custom_input(arguments)}
        if kind == "local_shell":
            return {"id": _item_id(item_id, "lsh_"), "type": "local_shell_call", "status": status, "call_id": call_id,
                    "action": shell_action(arguments)}
        item: dict[str, Any] = {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
                                "call_id": call_id, "name": name}
        if kind == "namespace":
            namespace, inner = self.namespaced[name]
            item["name"] = inner
            item["namespace"] = namespace
        return item

    def opening_item(self, name: str, call_id: str, item_id: str) -> dict[str, Any]:
        """The item as C{response.output_item.added} shows it, before any argument has arrived."""
        kind = self.kind_of(name)
        if kind == "custom":
            return {"id": _item_id(item_id, "ctc_"), "type": "custom_tool_call", "status": "in_progress",
                    "call_id": call_id, "name": name, "input": ""}
        if kind == "local_shell":
            return {"id": _item_id(item_id, "lsh_"), "type": "local_shell_call", "status": "in_progress",
                    "call_id": call_id, "action": {"type": "exec", "command": [], "env": {}}}
        return self.call_item(name, call_id, "", item_id, "in_progress")

    # ----------------------------------------------------------------------------------------------------
    # Client history item -> upstream function call

    def function_call_of(self, item: dict[str, Any], path: str) -> dict[str, Any] | None:
        """
        A client's call item (C{function_call}, C{custom_tool_call}, C{local_shell_call}) as a plain
        C{{"call_id", "name", "arguments"}} call, or None for a kind that is not a function call.
        """
        kind = item.get("type")
        call_id = item.get("call_id")
        if kind == "local_shell_call" and not isinstance(call_id, str):
            call_id = item.get("id")  # early local_shell_call items had only an id
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{path}.call_id is required", f"{path}.call_id")
        if kind == "function_call":
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"{path}.name is required", f"{path}.name")
            namespace = item.get("namespace")
            if isinstance(namespace, str) and namespace:
                name = flat_name(namespace, name)
            arguments = item.get("arguments")
            if isinstance(arguments, dict):
                arguments = json.dumps(arguments, ensure_ascii=False)
            if arguments is None:
                arguments = ""
            if not isinstance(arguments, str):
                raise InvalidRequest(f"{path}.arguments must be a JSON string", f"{path}.arguments")
            return {"call_id": call_id, "name": name, "arguments": arguments}
        if kind == "custom_tool_call":
            name = item.get("name")
            text = item.get("input")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"{path}.name is required", f"{path}.name")
            if not isinstance(text, str):
                raise InvalidRequest(f"{path}.input must be a string", f"{path}.input")
            return {"call_id": call_id, "name": name, "arguments": json.dumps({"input": text}, ensure_ascii=False)}
        if kind == "local_shell_call":
            action = item.get("action")
            if not isinstance(action, dict):
                raise InvalidRequest(f"{path}.action must be an object", f"{path}.action")
            args: dict[str, Any] = {"command": action.get("command") or []}
            if action.get("working_directory"):
                args["workdir"] = action["working_directory"]
            if action.get("timeout_ms"):
                args["timeout_ms"] = action["timeout_ms"]
            if action.get("env"):
                args["env"] = action["env"]
            return {"call_id": call_id, "name": LOCAL_SHELL, "arguments": json.dumps(args, ensure_ascii=False)}
        return None


def _item_id(item_id: str, prefix: str) -> str:
    if item_id.startswith("fc_"):
        return prefix + item_id[3:]
    return item_id


def flat_name(namespace: str, name: str) -> str:
    """A namespaced function's name for the upstream: C{<namespace>__<name>}, within the 64 characters allowed."""
    flat = f"{namespace}{_NS_SEP}{name}"
    return flat if len(flat) <= 64 else flat[:64]


def custom_input(arguments: str) -> str:
    """The C{input} of a custom tool call from the function arguments the upstream produced."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments  # not JSON: the model wrote the input itself
    if isinstance(value, dict):
        text = value.get("input")
        if isinstance(text, str):
            return text
        if len(value) == 1:
            only = next(iter(value.values()))
            if isinstance(only, str):
                return only
    return arguments if not isinstance(value, str) else value


def shell_action(arguments: str) -> dict[str, Any]:
    """A C{local_shell_call}'s exec action from the function arguments the upstream produced."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        value = {}
    if not isinstance(value, dict):
        value = {}
    command = value.get("command")
    if isinstance(command, str):
        command = ["bash", "-lc", command]
    if not isinstance(command, list):
        command = []
    action: dict[str, Any] = {"type": "exec", "command": [str(c) for c in command],
                              "env": value.get("env") if isinstance(value.get("env"), dict) else {}}
    if isinstance(value.get("timeout_ms"), int):
        action["timeout_ms"] = value["timeout_ms"]
    workdir = value.get("workdir") or value.get("working_directory")
    if isinstance(workdir, str):
        action["working_directory"] = workdir
    return action


def _function_tool(tool: dict[str, Any], path: str, name: str | None = None) -> dict[str, Any]:
    tool_name = name or tool.get("name")
    if not isinstance(tool_name, str) or not tool_name:
        raise InvalidRequest(f"{path}.name is required", f"{path}.name")
    if not _NAME_OK.match(tool_name):
        raise InvalidRequest(f"{path}.name must match ^[a-zA-Z0-9_-]{{1,64}}$", f"{path}.name")
    schema = tool.get("parameters")
    if not isinstance(schema, dict) or not schema:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    out: dict[str, Any] = {"type": "function", "name": tool_name, "parameters": schema}
    if isinstance(tool.get("description"), str):
        out["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        out["strict"] = tool["strict"]
    return out


def map_tools(tools: Any, tool_choice: Any = None) -> ToolMap:
    """
    The client's C{tools} (and C{tool_choice}) as plain functions; see the module docstring.

    @raise InvalidRequest: a tool that is malformed (not one of a kind this gateway drops on purpose).
    """
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be an array", "tools")
    functions: list[dict[str, Any]] = []
    custom: set[str] = set()
    namespaced: dict[str, tuple[str, str]] = {}
    local_shell = False
    dropped: list[str] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise InvalidRequest(f"{path} must be an object with a type", path)
        kind = tool["type"]
        if kind == "function":
            functions.append(_function_tool(tool, path))
        elif kind == "custom":
            name = tool.get("name")
            if not isinstance(name, str) or not _NAME_OK.match(name):
                raise InvalidRequest(f"{path}.name is required, ^[a-zA-Z0-9_-]{{1,64}}$", f"{path}.name")
            description = tool.get("description") if isinstance(tool.get("description"), str) else ""
            fmt = tool.get("format")
            arg_help = "The tool's whole input, as plain text (not JSON)."
            if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
                arg_help += f" It must follow this {fmt.get('syntax') or 'grammar'} grammar:\n{fmt['definition']}"
            entry = {"type": "function", "name": name, "parameters": _custom_schema(arg_help)}
            if description:
                entry["description"] = description
            functions.append(entry)
            custom.add(name)
        elif kind == "namespace":
            namespace = tool.get("name")
            inner = tool.get("tools")
            if not isinstance(namespace, str) or not namespace or not isinstance(inner, list):
                raise InvalidRequest(f"{path} needs a name and a tools array", path)
            for j, sub in enumerate(inner):
                spath = f"{path}.tools[{j}]"
                if not isinstance(sub, dict) or sub.get("type", "function") != "function":
                    kind_j = sub.get("type") if isinstance(sub, dict) else None
                    dropped.append(f"{namespace}.{kind_j}")
                    continue
                sub_name = sub.get("name")
                if not isinstance(sub_name, str) or not sub_name:
                    raise InvalidRequest(f"{spath}.name is required", f"{spath}.name")
                flat = flat_name(namespace, sub_name)
                functions.append(_function_tool(sub, spath, flat))
                namespaced[flat] = (namespace, sub_name)
        elif kind == "local_shell":
            functions.append({"type": "function", "name": LOCAL_SHELL,
                              "description": "Run a command on the user's machine and get its output.",
                              "parameters": _LOCAL_SHELL_SCHEMA})
            local_shell = True
        elif kind not in dropped:
            dropped.append(kind)
    return ToolMap(functions=functions, custom=frozenset(custom), namespaced=namespaced, local_shell=local_shell,
                   dropped=tuple(dropped), tool_choice=_fix_choice(tool_choice, functions, namespaced, local_shell))


def _fix_choice(choice: Any, functions: list[dict[str, Any]], namespaced: dict[str, tuple[str, str]],
                local_shell: bool) -> Any:
    names = {f["name"] for f in functions}
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest("tool_choice must be auto, none, required or a tool", "tool_choice")
        if choice == "required" and not names:
            return None
        return choice
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be a string or an object", "tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = choice.get("name")
        namespace = choice.get("namespace")
        if isinstance(namespace, str) and isinstance(name, str):
            name = flat_name(namespace, name)
        if isinstance(name, str) and name in names:
            return {"type": "function", "name": name}
        return "auto" if names else None
    if kind == "local_shell":
        return {"type": "function", "name": LOCAL_SHELL} if local_shell else ("auto" if names else None)
    if kind == "allowed_tools":
        mode = choice.get("mode")
        kept = []
        for tool in choice.get("tools") or ():
            if isinstance(tool, dict) and isinstance(tool.get("name"), str) and tool["name"] in names:
                kept.append({"type": "function", "name": tool["name"]})
        if not kept:
            return "auto" if names else None
        return {"type": "allowed_tools", "mode": mode if mode in ("auto", "required") else "auto", "tools": kept}
    # A hosted tool (web_search, file_search, ...): dropped with its tool.
    return "auto" if names else None


def pack_reasoning(blocks: list[dict[str, Any]]) -> str:
    """
    IR thinking blocks (signed thinking, redacted thinking, Gemini signatures) as one opaque string.

    Base64 of their JSON: the signatures inside are kept byte for byte, and a client that stores the item
    and sends it back needs to understand nothing of it.
    """
    raw = json.dumps(blocks, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _REASONING_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def unpack_reasoning(encrypted: Any) -> list[dict[str, Any]] | None:
    """
    The thinking blocks L{pack_reasoning} packed, or None when C{encrypted} is not ours (GPT's own).
    """
    if not isinstance(encrypted, str) or not encrypted.startswith(_REASONING_PREFIX):
        return None
    try:
        blocks = json.loads(base64.urlsafe_b64decode(encrypted[len(_REASONING_PREFIX):].encode("ascii")))
    except (ValueError, TypeError):
        return None
    if not isinstance(blocks, list):
        return None
    out = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "thinking" and isinstance(block.get("signature"), str):
            out.append({"type": "thinking", "thinking": block.get("thinking") if isinstance(block.get("thinking"), str)
                        else "", "signature": block["signature"]})
        elif block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            out.append({"type": "redacted_thinking", "data": block["data"]})
    return out


def is_ours(encrypted: Any) -> bool:
    return isinstance(encrypted, str) and encrypted.startswith(_REASONING_PREFIX)


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_PREFIX = re.compile(r'\s*\{\s*"input"\s*:\s*"')


class InputStreamer:
    """
    The C{input} of a custom tool call, streamed: the upstream streams the function's JSON arguments
    (C{{"input": "..."}}) in arbitrary pieces, and the client wants the string's text as it comes.

    L{feed} takes each piece of JSON and returns the newly decoded text (escapes resolved, a C{\\uXXXX}
    surrogate pair only once both halves are in).  Arguments of another shape (other keys first, not a string)
    give nothing here; the caller sends the whole input at the end from L{custom_input}, and L{streamed} says
    how much was already sent, so nothing is sent twice.
    """

    __slots__ = ("_buffer", "_state", "_pos", "streamed", "_high")

    def __init__(self) -> None:
        self._buffer = ""
        self._state = "prefix"  # prefix -> string -> done, or off
        self._pos = 0
        self._high = ""  # a pending high surrogate
        #: The text sent so far.
        self.streamed = ""

    def feed(self, fragment: str) -> str:
        if self._state in ("done", "off"):
            return ""
        self._buffer += fragment
        if self._state == "prefix":
            match = _PREFIX.match(self._buffer)
            if match is None:
                stripped = self._buffer.lstrip()
                if not '{"input":"'.startswith(re.sub(r"\s+", "", stripped)[:10]):
                    self._state = "off"
                return ""
            self._state = "string"
            self._pos = match.end()
        out: list[str] = []
        buffer, pos = self._buffer, self._pos
        while pos < len(buffer):
            ch = buffer[pos]
            if ch == '"':
                self._state = "done"
                pos += 1
                break
            if ch != "\\":
                end = pos
                while end < len(buffer) and buffer[end] not in '"\\':
                    end += 1
                out.append(buffer[pos:end])
                pos = end
                continue
            if pos + 1 >= len(buffer):
                break  # the escape's second half is in the next piece
            code = buffer[pos + 1]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                pos += 2
                continue
            if code != "u":
                self._state = "off"
                break
            if pos + 6 > len(buffer):
                break
            unit = int(buffer[pos + 2:pos + 6], 16)
            pos += 6
            if 0xD800 <= unit < 0xDC00:
                self._high = chr(unit)
                continue
            if 0xDC00 <= unit < 0xE000 and self._high:
                pair = (self._high + chr(unit)).encode("utf-16", "surrogatepass").decode("utf-16")
                self._high = ""
                out.append(pair)
                continue
            out.append(chr(unit))
        self._pos = pos
        text = "".join(out)
        self.streamed += text
        return text
