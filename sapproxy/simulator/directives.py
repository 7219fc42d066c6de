"""
Per-request directives: C{#sim{...json...}} inside the last user turn's text.

They let a test (or a benchmark) going through any client dialect steer one reply -- its length, pacing and
faults -- because the proxy passes user text through unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from attrs import frozen

_MARK = "#sim{"


@frozen
class Directive:
    """What one request asked of the simulator; every field has the simulator's default behaviour."""

    events: int = 8
    event_bytes: int | None = None
    delay: float | None = None
    fault: str | None = None
    fault_after: int = 2
    tool_calls: int | None = None
    thinking: bool = False
    stop: str | None = None
    python_literals: bool = False
    no_usage: bool = False
    retry_after: int = 1
    #: The tool to call (by name) and its arguments as JSON text, instead of the first tool and a sample.
    tool_name: str | None = None
    tool_args: str | None = None


def _find_json_object(text: str, start: int) -> int:
    """The index just past the JSON object starting at C{text[start] == "{"} (or -1), honouring strings."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def extract_directive(text: str) -> tuple[str, Directive]:
    """
    Split C{text} into the text without its C{#sim{...}} directive and the parsed directive. Malformed
    directives are left in the text (so a test sees them echoed) and ignored.
    """
    pos = text.find(_MARK)
    if pos < 0:
        return text, Directive()
    end = _find_json_object(text, pos + len(_MARK) - 1)
    if end < 0:
        return text, Directive()
    try:
        raw = json.loads(text[pos + len(_MARK) - 1:end])
    except ValueError:
        return text, Directive()
    if not isinstance(raw, dict):
        return text, Directive()
    cleaned = (text[:pos] + text[end:]).strip()
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    return cleaned, directive_from_dict(raw)


def directive_from_dict(raw: dict[str, Any]) -> Directive:
    """Coerce a parsed directive, ignoring unknown keys so older tests keep working."""
    kwargs: dict[str, Any] = {}
    if "events" in raw:
        kwargs["events"] = max(0, int(raw["events"]))
    if "event_bytes" in raw:
        kwargs["event_bytes"] = max(1, int(raw["event_bytes"]))
    if "delay" in raw:
        kwargs["delay"] = max(0.0, float(raw["delay"]))
    if "fault" in raw:
        kwargs["fault"] = str(raw["fault"])
    if "fault_after" in raw:
        kwargs["fault_after"] = max(0, int(raw["fault_after"]))
    if "tool_calls" in raw:
        kwargs["tool_calls"] = max(0, int(raw["tool_calls"]))
    if "retry_after" in raw:
        kwargs["retry_after"] = max(0, int(raw["retry_after"]))
    for flag in ("thinking", "python_literals", "no_usage"):
        if flag in raw:
            kwargs[flag] = bool(raw[flag])
    if "stop" in raw:
        kwargs["stop"] = str(raw["stop"])
    if "tool_name" in raw:
        kwargs["tool_name"] = str(raw["tool_name"])
    if "tool_args" in raw:
        kwargs["tool_args"] = json.dumps(raw["tool_args"], separators=(",", ":"))
    return Directive(**kwargs)
