"""
What a protocol handler hands back to the app: a whole JSON (or raw) response, or a stream plan.

Handlers stay pure (request in, reply out) so they can be tested without HTTP; the app turns replies into
writes, headers and faults.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from attrs import field, frozen


@frozen
class JsonReply:
    """A complete response; C{body} is JSON-encoded unless it is already bytes."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


@frozen
class StreamReply:
    """
    A streamed response: C{events} yields one wire event (SSE event or event-stream frame) per item;
    C{error_event} makes the provider's well-formed mid-stream error for the C{error_mid_stream} fault.
    """

    content_type: str
    events: Iterator[bytes]
    error_event: Callable[[], bytes] | None = None
    headers: Mapping[str, str] = field(factory=dict)


Reply = JsonReply | StreamReply


def sse_data(obj: Any) -> bytes:
    """One C{data:} SSE event holding compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n\n"


def sse_event(name: str, obj: Any) -> bytes:
    """One named SSE event, as Anthropic's API writes them."""
    return (b"event: " + name.encode() + b"\ndata: "
            + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n\n")
