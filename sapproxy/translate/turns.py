"""
The walk every IR-to-upstream converter starts with: the system prompt and the conversation's turns.

The IR is the Anthropic Messages format, but OpenAI clients put C{role: "system"} (or C{"developer"}, mapped
earlier) messages anywhere in a conversation; upstreams that take one system prompt get those folded into it,
in order.  Each converter still renders the contents its own way; this only decides which content is which.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from sapproxy.translate.errors import InvalidRequest


@frozen
class Turn:
    """One user or assistant message: its role, its content as given, and its path for error messages."""

    role: str
    content: Any
    path: str


@frozen
class SystemPart:
    """One piece of the system prompt: the body's own C{system}, or a C{role: "system"} message's content."""

    content: Any
    path: str


def split_turns(body: Any) -> tuple[list[SystemPart], list[Turn]]:
    """
    The system parts (the body's C{system} first, when present, then system messages in order) and the
    user/assistant turns of an IR request.

    @raise InvalidRequest: not an object, C{messages} not a list of objects, or a role no upstream has.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be an object")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", "messages")
    system = [SystemPart(body["system"], "system")] if body.get("system") is not None else []
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest("messages must be objects", path)
        role = message.get("role")
        if role == "system":
            system.append(SystemPart(message.get("content"), f"{path}.content"))
        elif role in ("user", "assistant"):
            turns.append(Turn(role, message.get("content"), path))
        else:
            raise InvalidRequest(f"unsupported role {role!r}", f"{path}.role")
    return system, turns
