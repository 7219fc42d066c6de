"""
Identifiers in each dialect's own shape, and the mapping between them.

OpenAI completions are C{chatcmpl-...}, Anthropic messages C{msg_...}, tool calls C{call_...} (OpenAI) or
C{toolu_...} (Anthropic).  Where a response is translated, its id is derived from the upstream's id (same
suffix, new prefix) so one request can be followed through the logs of both sides; tool call ids are never
rewritten, because the client sends them back and the upstream must recognise them.
"""

from __future__ import annotations

import os

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _random(length: int) -> str:
    """
    C{length} random base62 characters: one read of the OS's random source (ids must not repeat across
    processes or forks, so not the C{random} module), turned into digits without a per-character call.
    """
    n = int.from_bytes(os.urandom((length * 6 + 7) // 8 + 1), "big")
    out = []
    for _ in range(length):
        n, digit = divmod(n, 62)
        out.append(_ALPHABET[digit])
    return "".join(out)


def random_hex(length: int) -> str:
    """C{length} random hex digits, for ids that only need to be unique (request ids)."""
    return os.urandom((length + 1) // 2).hex()[:length]


def new_message_id() -> str:
    """A fresh Anthropic message id, C{msg_01} and 22 base62 characters like Anthropic's own."""
    return "msg_01" + _random(22)


def new_tool_use_id() -> str:
    return "toolu_01" + _random(22)


def new_call_id() -> str:
    return "call_" + _random(24)


def chat_id_from_message_id(message_id: str | None) -> str:
    """C{msg_X} -> C{chatcmpl-X}; a fresh id when there is nothing to derive from."""
    if message_id:
        return "chatcmpl-" + (message_id[4:] if message_id.startswith("msg_") else message_id)
    # A fresh OpenAI completion id: 29 base62 characters like OpenAI's own.
    return "chatcmpl-" + _random(29)


def message_id_from_chat_id(completion_id: str | None) -> str:
    """C{chatcmpl-X} -> C{msg_X}; a fresh id when there is nothing to derive from (Azure's empty ids)."""
    if completion_id:
        return "msg_" + (completion_id[9:] if completion_id.startswith("chatcmpl-") else completion_id)
    return new_message_id()
