"""
The binary C{application/vnd.amazon.eventstream} framing Bedrock's InvokeModelWithResponseStream and
ConverseStream use.

Each message: total length (4 bytes BE), headers length (4 bytes BE), CRC32 of those 8 bytes, headers, payload,
CRC32 of everything before it. Headers here are always strings (type 7): name length (1 byte), name, type
byte, value length (2 bytes BE), value.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from typing import Any

_STRING = 7


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """String headers in the event-stream encoding, in the given order."""
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One complete event-stream message with valid prelude and message CRCs."""
    raw_headers = encode_headers(headers)
    total = 4 + 4 + 4 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)


def chunk_frame(event: Mapping[str, Any]) -> bytes:
    """
    A C{chunk} event carrying one Anthropic stream event, as Bedrock sends it: the event's JSON, base64'd
    into C{{"bytes": ...}}.
    """
    inner = json.dumps(event, separators=(",", ":")).encode("utf-8")
    payload = json.dumps({"bytes": base64.b64encode(inner).decode("ascii")}, separators=(",", ":")).encode()
    return encode_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload)


def exception_frame(exception_type: str, message: str, original_status: int = 500) -> bytes:
    """
    A mid-stream error, shaped like the recorded C{modelStreamErrorException} frame: C{:message-type}
    exception, C{:exception-type}, and a JSON payload with C{message} and C{originalStatusCode}.
    """
    payload = json.dumps({"message": message, "originalStatusCode": original_status,
                          "originalMessage": "The model stream failed."}, separators=(",", ":")).encode()
    return encode_message(
        {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"},
        payload)


#: What Bedrock pads each ConverseStream event's payload with (the C{"p"} key), hiding the text's length.
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"


def converse_frame(event: Mapping[str, Any], seq: int = 0) -> bytes:
    """
    One ConverseStream event (C{{"contentBlockDelta": {...}}}) as Bedrock's own C{converse-stream} frames it:
    the member name in C{:event-type}, its body plus the C{"p"} padding (of varying length) as the payload.
    """
    ((name, body),) = event.items()
    payload = json.dumps({**body, "p": PADDING[: 1 + (seq * 7) % len(PADDING)]}, separators=(",", ":")).encode()
    return encode_message({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                          payload)
