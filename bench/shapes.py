"""
What the bench upstream sends: stream bodies shaped like the recorded provider streams in tests/fixtures.

A gateway's per-event cost depends on what an event carries, not only on how many there are: an Azure chunk
has content-filter results, an ``obfuscation`` pad, ``system_fingerprint``, ``logprobs`` and ``usage: null``
around a token of text; a minimal chunk (``id``, ``object``, ``created``, ``model``, ``choices``) has a fifth
of that.  So each stream here is built from a recorded stream's own events: its first events, one of its
content events as the template for every content event (only the text changes), and its closing events, with
the recorded tokens as the text (cycled to the number of events asked for) or, with ``event_bytes``, that many
bytes of text per event.

Shapes (``#sim{"shape": ...}`` in the request body, the name of each function below without ``_``):

  azure      openai/azure-model-router.1.chunks.txt: a leading ``prompt_filter_results`` chunk with no
             choices, ``content_filter_results`` on every choice, ``obfuscation``, a detailed usage chunk
  openai     openai/openai-text.chunks.txt: ``service_tier``, ``system_fingerprint``, ``logprobs: null``,
             ``refusal`` in the first delta, ``obfuscation``, a detailed usage chunk
  minimal    ``id``, ``object``, ``created``, ``model``, ``choices`` only (the bench's shape before issue #18)
  anthropic  anthropic-chunks/anthropic-text.chunks.txt (message_start with cache and tier fields, a ping),
             as Bedrock's invoke-with-response-stream sends it: AWS event-stream frames ``{"bytes": b64}``
  converse   bedrock/bedrock-text.chunks.txt: ConverseStream events, one SSE ``data:`` line each (as AI Core
             relays them), ending in ``messageStop`` and ``metadata``
  converse_eventstream
             the same events as Bedrock's own runtime sends them: AWS event-stream frames, ``:event-type``
             naming the event and its body, padded with ``"p"``, the payload
  gemini     gemini/google-text.chunks.txt: every chunk with ``usageMetadata``, ``modelVersion`` and
             ``responseId``; the last an empty text part with a ``thoughtSignature`` and ``finishReason``

The functions are pure (no Twisted) and return the bytes of each write, one event per write.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from pathlib import Path
from typing import Any, Callable

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

OPENAI_SHAPES = ("azure", "openai", "minimal")
SHAPES = OPENAI_SHAPES + ("anthropic", "converse", "converse_eventstream", "gemini")


def _lines(relative: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / relative).read_text(encoding="utf-8").splitlines() if line.strip()]


def synthetic_text(nbytes: int, i: int) -> str:
    piece = "word%d " % i
    return (piece * (nbytes // len(piece) + 1))[:nbytes]


def _texts(recorded: list[str], events: int, nbytes: int) -> list[str]:
    """The text of each content event: the recorded tokens cycled, or C{nbytes} of text each when > 0."""
    if nbytes > 0:
        return [synthetic_text(nbytes, i) for i in range(events)]
    recorded = [t for t in recorded if t] or ["token"]
    return [recorded[i % len(recorded)] for i in range(events)]


def _sse(events: list[Any], done: bool = True, sep: bytes = b"\n\n") -> list[bytes]:
    frames = [b"data: " + _dumps(e).encode() + sep for e in events]
    if done:
        frames.append(b"data: [DONE]" + sep)
    return frames


def _with_text(template: dict[str, Any], path: tuple[Any, ...], text: str) -> dict[str, Any]:
    """A deep copy of C{template} with the string at C{path} replaced (the copy keeps key order)."""
    event = json.loads(_dumps(template))
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = text
    return event


# ------------------------------------------------------------------------------------------------ OpenAI SSE

def _recorded_openai(relative: str, leading: int, events: int, nbytes: int) -> list[bytes]:
    """The recorded stream's C{leading} first chunks, C{events} content chunks in its shape (each with one of
    its ``obfuscation`` pads, in turn), and its finish and usage chunks."""
    rec = _lines(relative)
    content = [e for e in rec if e["choices"] and "content" in e["choices"][0]["delta"]
               and "role" not in e["choices"][0]["delta"]]
    pads = [e["obfuscation"] for e in content]
    out = rec[:leading]
    for i, text in enumerate(_texts([e["choices"][0]["delta"]["content"] for e in content], events, nbytes)):
        event = _with_text(content[0], ("choices", 0, "delta", "content"), text)
        event["obfuscation"] = pads[i % len(pads)]
        out.append(event)
    out += [rec[-2], rec[-1]]
    return _sse(out)


def azure(events: int, nbytes: int) -> list[bytes]:
    # Azure leads with a prompt_filter_results chunk (no choices) before the role chunk.
    return _recorded_openai("openai/azure-model-router.1.chunks.txt", 2, events, nbytes)


def openai(events: int, nbytes: int) -> list[bytes]:
    return _recorded_openai("openai/openai-text.chunks.txt", 1, events, nbytes)


def minimal(events: int, nbytes: int) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4.1"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for i in range(events):
        out.append({**base, "choices": [{"index": 0, "delta": {"content": synthetic_text(nbytes or 8, i)},
                                         "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 50, "total_tokens": 62}})
    return _sse(out)


# ------------------------------------------------------------------------------------------------ Claude on Bedrock

def anthropic_events(events: int, nbytes: int) -> list[dict[str, Any]]:
    rec = _lines("anthropic-chunks/anthropic-text.chunks.txt")
    deltas = [e for e in rec if e["type"] == "content_block_delta"]
    head = [e for e in rec if e["type"] in ("message_start", "content_block_start", "ping")]
    tail = [e for e in rec if e["type"] in ("content_block_stop", "message_delta", "message_stop")]
    out = list(head)
    for text in _texts([e["delta"]["text"] for e in deltas], events, nbytes):
        out.append(_with_text(deltas[0], ("delta", "text"), text))
    out += tail
    # Bedrock adds its invocation metrics to the last event.
    out[-1] = {**out[-1], "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 12, "outputTokenCount": 30, "invocationLatency": 1480, "firstByteLatency": 620}}
    return out


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v


def encode_frame(payload: bytes, headers: dict[str, str]) -> bytes:
    """One AWS event-stream message (prelude, prelude CRC32, headers, payload, message CRC32)."""
    hdr = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 16 + len(hdr) + len(payload), len(hdr))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + hdr + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def anthropic(events: int, nbytes: int) -> list[bytes]:
    frames = []
    for i, e in enumerate(anthropic_events(events, nbytes)):
        data = base64.b64encode(_dumps(e).encode()).decode()
        # Bedrock pads each payload ("p") so that sizes do not leak the text's length.
        payload = _dumps({"bytes": data, "p": _PAD[: 8 + (i * 7) % 40]}).encode()
        frames.append(encode_frame(payload, {":event-type": "chunk", ":content-type": "application/json",
                                             ":message-type": "event"}))
    return frames


def converse_events(events: int, nbytes: int) -> list[dict[str, Any]]:
    rec = _lines("bedrock/bedrock-text.chunks.txt")
    deltas = [e for e in rec if "contentBlockDelta" in e]
    out = [e for e in rec if "messageStart" in e]
    for text in _texts([e["contentBlockDelta"]["delta"]["text"] for e in deltas], events, nbytes):
        out.append(_with_text(deltas[0], ("contentBlockDelta", "delta", "text"), text))
    out += [e for e in rec if "contentBlockStop" in e or "messageStop" in e or "metadata" in e]
    return out


def converse(events: int, nbytes: int) -> list[bytes]:
    return _sse(converse_events(events, nbytes), done=False)


def converse_eventstream(events: int, nbytes: int) -> list[bytes]:
    frames = []
    for i, event in enumerate(converse_events(events, nbytes)):
        ((name, body),) = event.items()
        payload = _dumps({**body, "p": _PAD[: 8 + (i * 7) % 40]}).encode()
        frames.append(encode_frame(payload, {":event-type": name, ":content-type": "application/json",
                                             ":message-type": "event"}))
    return frames


# ------------------------------------------------------------------------------------------------ Gemini on Vertex

def gemini(events: int, nbytes: int) -> list[bytes]:
    rec = _lines("gemini/google-text.chunks.txt")
    texts = [p["text"] for e in rec for p in e["candidates"][0]["content"]["parts"] if p.get("text")]
    template = rec[0]
    out = [_with_text(template, ("candidates", 0, "content", "parts", 0, "text"), text)
           for text in _texts(texts, events, nbytes)]
    out.append(rec[-1])
    return _sse(out, done=False, sep=b"\r\n\r\n")


BUILDERS: dict[str, Callable[[int, int], list[bytes]]] = {
    "azure": azure, "openai": openai, "minimal": minimal, "anthropic": anthropic, "converse": converse,
    "converse_eventstream": converse_eventstream, "gemini": gemini,
}


def stream(shape: str, events: int, nbytes: int) -> list[bytes]:
    """
    The writes of one stream of C{shape} with C{events} content events (C{nbytes} of text each, or the
    recorded tokens when 0).
    """
    return BUILDERS[shape](events, nbytes)
