"""
An input token count in C{message_start} where the upstream tells it only at the end.

Anthropic sends the prompt's count in C{message_start}, and clients show it at once (Claude Code's context
meter); OpenAI tells the count only in its last chunk, Gemini often only in its last.  A stream from them to
an Anthropic client would start with C{input_tokens: 0}; this puts an estimate there instead (about four
characters of the request's JSON a token: cheap, as it runs for every such stream), and the
C{message_delta} at the end still carries the upstream's own count.  Only for Anthropic clients: an OpenAI
client's converter keeps the largest count it sees, so an estimate there could outgrow the real one.
"""

from __future__ import annotations

from typing import Any

from sapproxy.translate.jsontext import json_text

CHARS_PER_TOKEN = 4


def estimate_input_tokens(request: Any) -> int:
    """About how many tokens the prompt of an IR request holds (its messages, system and tools)."""
    if not isinstance(request, dict):
        return 0
    parts = {key: request.get(key) for key in ("system", "messages", "tools")}
    return max(len(json_text(parts)) // CHARS_PER_TOKEN, 1)


class InputTokensAtStart:
    """A stream translator on IR events: C{message_start} with C{input_tokens: 0} gets C{estimate}."""

    __slots__ = ("_estimate", "_done")

    def __init__(self, estimate: int) -> None:
        self._estimate = estimate
        self._done = False

    def feed(self, event: Any) -> list[Any]:
        if self._done or not isinstance(event, dict) or event.get("type") != "message_start":
            return [event]
        self._done = True
        message = event.get("message")
        if not isinstance(message, dict):
            return [event]
        usage = message.get("usage")
        if not isinstance(usage, dict) or usage.get("input_tokens") or usage.get("cache_read_input_tokens"):
            return [event]
        return [{**event, "message": {**message, "usage": {**usage, "input_tokens": self._estimate}}}]

    def finish(self) -> list[Any]:
        return []
