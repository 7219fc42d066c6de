"""
AWS event-stream (C{application/vnd.amazon.eventstream}) decoding for Bedrock's
C{invoke-with-response-stream} (L{EventStreamDecoder}) and C{converse-stream}
(L{ConverseEventStreamDecoder}).

Each binary frame is: total length (4), headers length (4), prelude CRC32 (4), headers, payload, message
CRC32 (4).  Framing and both CRCs are checked by L{EventStreamDecoder}, headers parsed by botocore's
L{EventStreamHeaderParser}; a corrupt frame raises L{EventStreamError} and the decoder stays broken (the byte
stream cannot be resynchronised).

Frame kinds:

  - C{:message-type: event} (C{:event-type: chunk}): payload C{{"bytes": <base64>, "p": <padding>}};
    the base64 decodes to one Anthropic stream event (JSON), returned as a dict.
  - C{:message-type: exception}: C{:exception-type} names the AWS error, the payload is
    C{{"message": ...}}; returned as an Anthropic C{error} event (see L{EXCEPTION_TYPES}).
  - C{:message-type: error}: C{:error-code}/C{:error-message} headers; returned the same way.

Bedrock's own C{converse-stream} uses the same frames with a different event body: C{:event-type} names the
ConverseStream event (C{messageStart}, C{contentBlockStart}, C{contentBlockDelta}, C{contentBlockStop},
C{messageStop}, C{metadata}) and the payload is that event's JSON body itself, with Bedrock's C{"p"} padding
key beside the members (it hides the length of the text, and is no member of any event).
L{ConverseEventStreamDecoder} returns C{{"<event-type>": body}}, the decoded event the converse translator reads
(and the shape SAP AI Core's SSE converse-stream carries); exceptions and errors as above.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from typing import Any, cast

import msgspec
from botocore.eventstream import EventStreamHeaderParser, ParserError

from sapproxy.translate import ir
from sapproxy.translate.jsontext import parse_json as _parse_json

_loads = json.loads
_b64decode = binascii.a2b_base64
_HEADER_PARSER = EventStreamHeaderParser()

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


def anthropic_error_event(aws_type: str | None, message: str) -> ir.ErrorEvent:
    key = (aws_type or "").rsplit("#", 1)[-1]
    key = key[:1].lower() + key[1:]
    return {
        "type": "error",
        "error": {"type": EXCEPTION_TYPES.get(key, "api_error"), "message": message or key or "upstream error"},
    }


_PRELUDE = struct.Struct("!III")
_CRC = struct.Struct("!I")
#: Bounds a frame must keep (botocore's): a prelude that claims more is corrupt, not a frame to wait for.
_MAX_HEADERS = 128 * 1024
_MAX_PAYLOAD = 24 * 1024 * 1024
#: A chunk payload as Bedrock writes it, C{{"bytes":"<base64>","p":"<padding>"}}: taken apart without a JSON
#: parser.  Anything else (other keys, spaces, escapes) goes through L{json.loads}.
_CHUNK_PAYLOAD = re.compile(rb'\{"bytes":"([A-Za-z0-9+/=]*)"(?:,"p":"[A-Za-z0-9]*")?\}')


class _ChunkPayload(msgspec.Struct, gc=False):
    """A chunk payload as msgspec reads it: JSON, its C{bytes} base64-decoded (strictly) in the same pass."""

    data: bytes = msgspec.field(name="bytes")


#: One C call for the usual payload: about a third of the instructions of L{_CHUNK_PAYLOAD}'s match (its
#: character-by-character count over the base64) and the decoding after it.
_decode_chunk_payload = msgspec.json.Decoder(_ChunkPayload).decode


def _chunk_bytes(payload: bytes) -> bytes:
    """
    A chunk payload's event bytes, for one that msgspec refused (base64 that is not strictly so, JSON it
    does not read): by L{_CHUNK_PAYLOAD}, else by JSON, as before it.  msgspec takes only strict base64, of
    which the lenient decoder here gives the same bytes, so whichever way a payload goes, its bytes are the same.
    """
    match = _CHUNK_PAYLOAD.fullmatch(payload)
    return _b64decode(match.group(1) if match is not None else _loads(payload)["bytes"])


class EventStreamDecoder:
    """
    Incremental decoder: C{feed(bytes)} returns the Anthropic events of every frame completed by those bytes.

    Framing and both CRCs are checked here (C{zlib.crc32} over a memoryview, no copies); header blocks are
    parsed by botocore's L{EventStreamHeaderParser}, once per distinct block: Bedrock repeats the same three
    headers on every chunk frame, so the cache (bounded) turns the pure-Python header parser, most of
    botocore's decoding cost, into a dict lookup.  (botocore's own buffer also re-copies its whole buffer
    after every frame; this one keeps an offset.)
    """

    __slots__ = ("_data", "_broken", "_headers", "frames")

    def __init__(self) -> None:
        self._data = b""
        self._broken: EventStreamError | None = None
        self._headers: dict[bytes, dict[str, Any]] = {}
        #: Frames decoded so far (events, exceptions and ignored frames alike).
        self.frames = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if self._broken is not None:
            raise self._broken
        if not data:
            return []
        buf = self._data + data if self._data else data
        out: list[dict[str, Any]] = []
        pos = 0
        size = len(buf)
        try:
            while size - pos >= 12:
                total, headers_length, prelude_crc = _PRELUDE.unpack_from(buf, pos)
                if zlib.crc32(buf[pos : pos + 8]) != prelude_crc:
                    raise EventStreamError("corrupt event-stream frame: prelude CRC mismatch")
                if headers_length > _MAX_HEADERS or total < 16 + headers_length \
                        or total - 16 - headers_length > _MAX_PAYLOAD:
                    raise EventStreamError(f"corrupt event-stream frame: impossible lengths "
                                           f"(total {total}, headers {headers_length})")
                end = pos + total
                if end > size:
                    break
                if zlib.crc32(memoryview(buf)[pos : end - 4]) != _CRC.unpack_from(buf, end - 4)[0]:
                    raise EventStreamError("corrupt event-stream frame: message CRC mismatch")
                headers_end = pos + 12 + headers_length
                self.frames += 1
                event = self._decode(self._parse_headers(buf[pos + 12 : headers_end]), buf[headers_end : end - 4])
                if event is not None:
                    out.append(event)
                pos = end
        except EventStreamError as e:
            self._broken = e
            raise
        self._data = buf[pos:] if pos < size else b""
        return out

    def finish(self) -> list[dict[str, Any]]:
        """
        The byte stream ended: no more events (returns C{[]}, the stream-source shape); raises
        L{EventStreamError} if it ended inside a frame (a cut connection).
        """
        if self._broken is not None:
            raise self._broken
        if self._data:
            raise EventStreamError(f"event stream ended inside a frame ({len(self._data)} bytes left over)")
        return []

    def _parse_headers(self, raw: bytes) -> dict[str, Any]:
        headers = self._headers.get(raw)
        if headers is None:
            try:
                headers = _HEADER_PARSER.parse(raw)
            except (ParserError, struct.error, UnicodeDecodeError, IndexError, KeyError) as e:
                raise EventStreamError(f"corrupt event-stream frame: bad headers: {e}") from e
            if len(self._headers) < 64:
                self._headers[raw] = headers
        return headers

    @staticmethod
    def _decode(headers: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
        kind = headers.get(":message-type")
        if kind == "event":
            if headers.get(":event-type", "chunk") != "chunk":
                return None
            try:
                try:
                    raw = _decode_chunk_payload(payload).data
                except msgspec.DecodeError:
                    raw = _chunk_bytes(payload)
                event = _parse_json(raw)
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
            return cast("dict[str, Any]", anthropic_error_event(headers.get(":exception-type"), message))
        if kind == "error":
            return cast("dict[str, Any]",
                        anthropic_error_event(headers.get(":error-code"), str(headers.get(":error-message") or "")))
        return None


class ConverseEventStreamDecoder(EventStreamDecoder):
    """
    Bedrock's C{converse-stream}: C{feed(bytes)} returns C{{"<event-type>": body}} per event frame (the
    padding key C{"p"} dropped), and Anthropic C{error} events for exception and error frames.  Framing and
    CRCs are checked as for invoke.
    """

    __slots__ = ()

    @staticmethod
    def _decode(headers: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
        if headers.get(":message-type") != "event":
            return EventStreamDecoder._decode(headers, payload)
        name = headers.get(":event-type")
        if not isinstance(name, str) or not name:
            raise EventStreamError("converse-stream event frame without an :event-type header")
        try:
            body = _loads(payload) if payload else {}
        except (ValueError, UnicodeDecodeError) as e:
            raise EventStreamError(f"converse-stream {name} payload is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise EventStreamError(f"converse-stream {name} payload is not a JSON object")
        body.pop("p", None)
        return {name: body}


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


def encode_converse_event(event: dict[str, Any], padding: str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ") -> bytes:
    """
    A decoded ConverseStream event (C{{"contentBlockDelta": {...}}}) framed as Bedrock's C{converse-stream}
    sends it: the member name in C{:event-type}, its body (plus the C{"p"} padding) as the payload.
    """
    ((name, body),) = event.items()
    payload = json.dumps({**body, "p": padding} if padding else body, separators=(",", ":")).encode()
    return encode_event_frame(
        payload, {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    )
