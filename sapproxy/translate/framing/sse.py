"""
Incremental Server-Sent Events: decoding bytes as they arrive, and encoding events to write.

Upstream streams arrive split at arbitrary bytes (an event across two TCP reads, a CRLF across two reads), so
the decoder keeps the unfinished tail between calls.  It follows the WHATWG event-stream rules that real
providers rely on: LF, CRLF or CR line ends; C{:} comment lines; several C{data:} lines joined by LF; one
optional space after the colon.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple


from sapproxy.translate.jsontext import compact_json, json_text  # noqa: F401  (compact_json: re-exported)


class SSEEvent(NamedTuple):
    """
    One dispatched event (a named tuple: a stream makes one per event, and a tuple is the cheapest value to
    make).

    @ivar event: the C{event:} field, or L{None} where the event had none (OpenAI streams).
    @ivar data: the C{data:} lines joined by LF.
    """

    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


#: The default cap on one SSE line or event (the largest real events, a whole tool call's arguments or an
#: image, stay far below it).
MAX_EVENT_BYTES = 16 * 1024 * 1024


def apply_stream_limits(config: Any) -> None:
    """
    Make C{config.max_stream_event_bytes} the cap of every decoder made from now on (at start and on reload).
    """
    global MAX_EVENT_BYTES
    MAX_EVENT_BYTES = int(config.max_stream_event_bytes)


class SSEEventTooLarge(ValueError):
    """
    An upstream line or event over the decoder's cap; the relay ends the stream with a 502 (or fails over).
    """


class SSEDecoder:
    """
    Turn a byte stream into L{SSEEvent}s, one C{feed} at a time.
    """

    __slots__ = ("_tail", "_parts", "_tail_len", "_event", "_data", "_size", "_skip_lf", "comments", "max_event",
                 "raw")

    def __init__(self, max_event: int | None = None, *, raw: bool = False) -> None:
        #: With C{raw}, an event that is one C{data: } line (nearly every event of a real stream) comes out
        #: as the bytes of its data, neither decoded nor wrapped in an L{SSEEvent}, for a reader that works
        #: on the bytes (L{sapproxy.translate.framing.pipeline.StreamPipeline}'s pass-through lane); every
        #: other event comes out as an L{SSEEvent}, as without it.
        self.raw = raw
        #: The most bytes one line, or one event's data, may have: an upstream sending an endless line
        #: would otherwise grow the gateway's memory without a byte reaching the client.
        self.max_event = max_event if max_event is not None else MAX_EVENT_BYTES
        self._size = 0
        self._tail = b""
        #: Reads that continue an unfinished line, kept apart until the line ends: joining each to the tail
        #: as it came would copy a long line over and over.
        self._parts: list[bytes] = []
        self._tail_len = 0
        self._event: str | None = None
        self._data: list[str] = []
        self._skip_lf = False
        #: How many comment lines were seen; keep-alive comments carry no event but prove the link alive.
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:  # (or bytes too, with raw: see __init__)
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._tail:
            if b"\n" not in chunk and b"\r" not in chunk:
                self._parts.append(chunk)
                self._tail_len += len(chunk)
                if self._tail_len > self.max_event:
                    raise SSEEventTooLarge(f"the upstream sent an event line longer than {self.max_event} bytes")
                return []
            if self._parts:
                self._tail = b"".join([self._tail, *self._parts])
                self._parts = []
        buffer = self._tail + chunk if self._tail else chunk
        if not buffer:
            return []
        if not self._data and self._event is None and b"\r" not in buffer:
            return self._feed_lf(buffer)
        return self._feed_lines(buffer)

    def _feed_lines(self, buffer: bytes) -> list[SSEEvent]:
        """
        Line by line, by the rules: any line ends, fields, comments; the unfinished last line kept.
        """
        lines = buffer.splitlines(True)
        last = lines[-1]
        if last.endswith(b"\r"):
            # Perhaps the first half of a CRLF whose LF is in the next read.
            self._skip_lf = True
            self._tail = b""
        elif last.endswith(b"\n"):
            self._tail = b""
        else:
            self._tail = lines.pop()
            self._tail_len = len(self._tail)
            if self._tail_len > self.max_event:
                raise SSEEventTooLarge(f"the upstream sent an event line longer than {self.max_event} bytes")
        events: list[SSEEvent] = []
        for raw in lines:
            self._line(raw.rstrip(b"\r\n"), events)
        return events

    def _feed_lf(self, buffer: bytes) -> list[SSEEvent]:
        """
        The common case, LF line ends from an event boundary on: split at the blank lines, and take an event
        that is one C{data: } line as it is, without going line by line.  What follows the last blank line
        is an unfinished line (kept as the tail) or an event begun, which goes by the rules.
        """
        blocks = buffer.split(b"\n\n")
        rest = blocks.pop()
        if len(rest) - rest.rfind(b"\n") - 1 > self.max_event:  # the unfinished last line, checked first
            raise SSEEventTooLarge(f"the upstream sent an event line longer than {self.max_event} bytes")
        self._tail = b""
        events: list[Any] = []
        raw = self.raw
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block and len(block) - 6 <= self.max_event:
                events.append(block[6:] if raw else SSEEvent(None, block[6:].decode("utf-8", "replace")))
                continue
            for line in block.split(b"\n"):
                self._line(line, events)
            self._line(b"", events)
        if b"\n" in rest:
            # An event begun but not ended: its whole lines go by the rules (and their size limit).
            events.extend(self._feed_lines(rest))
        elif rest:
            self._tail = rest
            self._tail_len = len(rest)
        return events

    def finish(self) -> list[SSEEvent]:
        """
        The stream ended: dispatch what is left, even without its closing blank line.

        The WHATWG rules discard such an event; a gateway that relays a stream cut short keeps it, because
        the last event is most often the one that carries the usage.
        """
        events: list[SSEEvent] = []
        if self._parts:
            self._tail = b"".join([self._tail, *self._parts])
            self._parts = []
        if self._tail:
            self._line(self._tail.rstrip(b"\r\n"), events)
            self._tail = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event, "\n".join(self._data)))
            self._event = None
            self._data = []
            self._size = 0
            return
        if line[0] == 0x3A:  # ":"
            self.comments += 1
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value)
            if self._size > self.max_event:
                raise SSEEventTooLarge(f"the upstream sent an event larger than {self.max_event} bytes")
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id" and "retry" mean nothing to a relay; unknown fields are ignored, as the rules say.


class Rendered(dict):  # type: ignore[type-arg]
    """
    A client event whose JSON is already known: a dict like any other to whatever reads it, but the encoders
    write C{json} instead of serialising it again.

    A stream is mostly content deltas that differ only in their text, so a translator renders each one from
    a per-stream template (the JSON before and after the text) and one serialised string, instead of a
    whole nested object through the encoder: about a quarter of a translated stream's CPU.  GPT pass-through
    keeps the upstream's own JSON of each chunk (L{sapproxy.translate.wire.openai_passthrough}).  Whoever makes
    one guarantees that C{json} is JSON of the dict (L{json_text} of it, or bytes that parse to it), and
    whoever changes the dict changes C{json} with it.
    """

    __slots__ = ("json",)

    def __init__(self, payload: dict[str, Any], json: bytes) -> None:
        super().__init__(payload)
        self.json = json


def split_template(rendered: bytes, placeholder: bytes, suffix: bytes) -> bytes | None:
    """
    The JSON before a value in C{rendered}, which must end with C{placeholder} (the value's own JSON) and then
    C{suffix}; L{None} when it does not, so the caller renders as usual instead of trusting a template.
    """
    tail = placeholder + suffix
    return rendered[: -len(tail)] if rendered.endswith(tail) else None


def encode_data(payload: Any) -> bytes:
    """
    One OpenAI-style event (C{data:} only) with its blank line, ready for one write.
    """
    if type(payload) is Rendered:
        return b"data: " + payload.json + b"\n\n"
    return b"data: " + json_text(payload) + b"\n\n"


def encode_event(payload: dict[str, Any]) -> bytes:
    """
    One Anthropic-style event: C{event:} named after the payload's C{type}, then its C{data:}.
    """
    data = payload.json if type(payload) is Rendered else json_text(payload)
    return b"event: " + payload["type"].encode("utf-8") + b"\ndata: " + data + b"\n\n"


def encode_raw(event: str | None, data: str) -> bytes:
    """
    Re-frame an event as received, its data untouched (pass-through keeps the upstream's bytes).
    """
    head = b"event: " + event.encode("utf-8") + b"\n" if event else b""
    return head + b"data: " + data.replace("\n", "\ndata: ").encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
KEEPALIVE_COMMENT = b": keep-alive\n\n"
