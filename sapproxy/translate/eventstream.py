"""
AWS event-stream (C{application/vnd.amazon.eventstream}) decoding for Bedrock's
C{invoke-with-response-stream}.

Each binary frame is: total length (4), headers length (4), prelude CRC32 (4), headers, payload, message
CRC32 (4).  Framing and both CRCs are checked by botocore's pure-Python L{EventStreamBuffer}; a corrupt
frame raises L{EventStreamError} and the decoder stays broken (the byte stream cannot be resynchronised).

Frame kinds:

  - C{:message-type: event} (C{:event-type: chunk}): payload C{{"bytes": <base64>, "p": <padding>}};
    the base64 decodes to one Anthropic stream event (JSON), returned as a dict.
  - C{:message-type: exception}: C{:exception-type} names the AWS error, the payload is
    C{{"message": ...}}; returned as an Anthropic C{error} event (see L{EXCEPTION_TYPES}).
  - C{:message-type: error}: C{:error-code}/C{:error-message} headers; returned the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from typing import Any

from botocore.eventstream import EventStreamBuffer, ParserError

_loads = json.loads
_b64decode = binascii.a2b_base64

#: AWS exception names -> Anthropic error types.
EXCEPTION_TYPES = {
    "throttlingException": "rate_limit_error",
    "serviceUnavailableException": "overloaded_error",
    "modelNotReadyException": "overloaded_error",
    "modelStreamErrorException": "api_error",
    "internalServerException": "api_error",
    "modelErrorException": "api_error",
    "modelTimeoutException": "api_error",
    "validationException": "invalid_request_error",
    "accessDeniedException": "permission_error",
    "resourceNotFoundException": "not_found_error",
    "serviceQuotaExceededException": "rate_limit_error",
}


class EventStreamError(Exception):
    """The upstream's event-stream bytes are corrupt (bad CRC, impossible lengths, bad headers or payload)."""


def anthropic_error_event(aws_type: str | None, message: str) -> dict[str, Any]:
    key = (aws_type or "").rsplit("#", 1)[-1]
    key = key[:1].lower() + key[1:]
    return {
        "type": "error",
        "error": {"type": EXCEPTION_TYPES.get(key, "api_error"), "message": message or key or "upstream error"},
    }


class _CachingBuffer(EventStreamBuffer):
    """
    botocore's buffer with the headers of each frame parsed once per distinct header block.

    Bedrock repeats the same three headers on every chunk frame, and botocore's pure-Python header parser
    is most of the decoding cost; the parsed headers are cached by their raw bytes (immutable C{bytes},
    already CRC-checked as part of the message).  The cache is bounded.
    """

    _header_cache: dict[bytes, dict[str, Any]]

    def __init__(self) -> None:
        super().__init__()
        self._header_cache = {}

    def _parse_headers(self) -> dict[str, Any]:
        prelude = self._prelude
        raw = self._data[12 : prelude.headers_end]
        cached = self._header_cache.get(raw)
        if cached is None:
            cached = self._header_parser.parse(raw)
            if len(self._header_cache) < 64:
                self._header_cache[raw] = cached
        return cached


class EventStreamDecoder:
    """
    Incremental decoder: C{feed(bytes)} returns the Anthropic events of every frame completed by those bytes.
    """

    __slots__ = ("_buffer", "_broken", "frames")

    def __init__(self) -> None:
        self._buffer = _CachingBuffer()
        self._broken: EventStreamError | None = None
        #: Frames decoded so far (events, exceptions and ignored frames alike).
        self.frames = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if self._broken is not None:
            raise self._broken
        if not data:
            return []
        self._buffer.add_data(data)
        out: list[dict[str, Any]] = []
        try:
            for message in self._buffer:
                self.frames += 1
                event = self._decode(message.headers, message.payload)
                if event is not None:
                    out.append(event)
        except ParserError as e:
            self._broken = EventStreamError(f"corrupt event-stream frame: {e}")
            raise self._broken from e
        except EventStreamError as e:
            self._broken = e
            raise
        return out

    def finish(self) -> list[dict[str, Any]]:
        """
        The byte stream ended: no more events (returns C{[]}, the stream-source shape); raises
        L{EventStreamError} if it ended inside a frame (a cut connection).
        """
        if self._broken is not None:
            raise self._broken
        pending = len(self._buffer._data)
        if pending:
            raise EventStreamError(f"event stream ended inside a frame ({pending} bytes left over)")
        return []

    @staticmethod
    def _decode(headers: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
        kind = headers.get(":message-type")
        if kind == "event":
            if headers.get(":event-type", "chunk") != "chunk":
                return None
            try:
                wrapper = _loads(payload)
                raw = _b64decode(wrapper["bytes"])
                event = _loads(raw)
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                raise EventStreamError(f"event-stream chunk payload is not base64 JSON: {e}") from e
            if not isinstance(event, dict):
                raise EventStreamError("event-stream chunk is not a JSON object")
            return event
        if kind == "exception":
            message = ""
            try:
                body = json.loads(payload) if payload else {}
                if isinstance(body, dict):
                    message = str(body.get("message") or body.get("Message") or "")
            except ValueError:
                message = payload.decode("utf-8", "replace")
            return anthropic_error_event(headers.get(":exception-type"), message)
        if kind == "error":
            return anthropic_error_event(headers.get(":error-code"), str(headers.get(":error-message") or ""))
        return None


def _header(name: str, value: str) -> bytes:
    n = name.encode()
    v = value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v


def encode_event_frame(payload: bytes, headers: dict[str, str]) -> bytes:
    """One binary event-stream frame with string headers (for tests and simulators)."""
    head = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack("!I", zlib.crc32(message) & 0xFFFFFFFF)


def encode_chunk(event: dict[str, Any]) -> bytes:
    """An Anthropic stream event framed as Bedrock's C{invoke-with-response-stream} sends it."""
    data = base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()
    payload = json.dumps({"bytes": data, "p": "abcdefghij"}).encode()
    return encode_event_frame(
        payload, {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    )
