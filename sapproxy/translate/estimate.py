"""
Token estimates for when an upstream reports no usage (a stream cut short, a deployment that omits it), so a
request is never recorded, or charged against a key's tokens-per-minute, as free.

The prompt is counted with the offline tokenizer of L{sapproxy.translate.counting}; the completion from the
characters of text the client was sent (about four characters a token).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.usage import Usage

CHARS_PER_TOKEN = 4


def estimate_prompt(counter: Callable[[dict[str, Any], str], int], body: Any, family: str) -> int:
    """
    C{counter}'s count of a request body, or 0 where the body is not one it can count.
    """
    if not isinstance(body, dict):
        return 0
    try:
        return counter(body, family)
    except (InvalidRequest, ValueError, TypeError, KeyError):
        return 0


def completion_tokens(chars: int) -> int:
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def event_text_chars(event: dict[str, Any]) -> int:
    """
    Characters of model output in one client stream event (OpenAI chunk or Anthropic event).
    """
    delta = event.get("delta")
    if isinstance(delta, str):  # a Responses API stream's text, arguments or summary delta
        return len(delta)
    if isinstance(delta, dict):
        return sum(len(v) for k, v in delta.items() if k in ("text", "thinking", "partial_json") and isinstance(v, str))
    choices = event.get("choices")
    if not choices:
        return 0
    delta = choices[0].get("delta") or {}
    n = len(delta.get("content") or "") + len(delta.get("reasoning_content") or "")
    for call in delta.get("tool_calls") or ():
        n += len((call.get("function") or {}).get("arguments") or "")
    return n


def response_text_chars(response: dict[str, Any]) -> int:
    """
    Characters of model output in a whole response (OpenAI completion or Anthropic message).
    """
    n = 0
    for block in response.get("content") or ():
        if isinstance(block, dict):
            n += len(block.get("text") or block.get("thinking") or "")
            if "input" in block:
                n += len(json.dumps(block["input"]))
    for item in response.get("output") or ():  # a Responses API response
        if isinstance(item, dict):
            n += sum(len(p.get("text") or "") for p in item.get("content") or () if isinstance(p, dict))
            n += len(item.get("arguments") or item.get("input") or "")
    for choice in response.get("choices") or ():
        message = choice.get("message") or {}
        n += len(message.get("content") or "") + len(message.get("reasoning_content") or "")
        for call in message.get("tool_calls") or ():
            n += len((call.get("function") or {}).get("arguments") or "")
    return n


def estimated_usage(prompt: int, output_chars: int) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens(output_chars), estimated=True)
