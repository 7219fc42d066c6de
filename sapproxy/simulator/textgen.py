"""
Deterministic content: reply text, token counts, tool arguments and thinking signatures.

Everything is a pure function of the request so that tests can predict every byte, and the stream and
non-stream forms of one request agree on text and usage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from .directives import Directive

FILLER = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()

#: The key of the deterministic thinking signature; public on purpose, tests recompute signatures with it.
SIGNATURE_KEY = b"sapproxy-simulator-thinking-signature"


def reply_piece(user_text: str, directive: Directive, i: int) -> str:
    """
    The C{i}th content delta of the reply: "Echo: <user text>" first, then one filler word per further event,
    each padded to about C{event_bytes} when asked. Generated one at a time, so huge streams never hold the
    whole reply; joining deltas 0..events-1 gives the non-stream reply.
    """
    if i == 0:
        piece = "Echo: " + user_text if user_text else "Echo:"
    else:
        piece = " " + FILLER[i % len(FILLER)]
    if directive.event_bytes:
        target = directive.event_bytes
        size = len(piece.encode("utf-8"))
        if size < target:
            word = FILLER[i % len(FILLER)]
            fill = (" " + word) * ((target - size) // (len(word) + 1) + 1)
            piece = (piece + fill)[: max(target, len(piece))]
    return piece


def count_tokens(text: str) -> int:
    """A stable token estimate: about 0.75 words per token, at least one for non-empty text."""
    words = len(text.split())
    if not text:
        return 0
    return max(1, round(words / 0.75))


def count_reply_tokens(user_text: str, directive: Directive) -> int:
    """
    Tokens of the whole reply, in O(1): the reply is never materialised to count it (a 200 MB reply would
    block the reactor for seconds). Unpadded replies count words / 0.75; padded ones count 4 bytes a token.
    """
    n = directive.events
    if n <= 0:
        return 0
    if directive.event_bytes:
        return max(1, -(-n * directive.event_bytes // 4))
    words = len(("Echo: " + user_text).split()) + (n - 1)
    return max(1, round(words / 0.75))


def count_prompt_tokens(body: Any) -> int:
    """Prompt tokens: a stable function of the request JSON, so usage is reproducible."""
    return count_tokens(" ".join(_strings(body)))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        out: list[str] = []
        for v in value.values():
            out.extend(_strings(v))
        return out
    if isinstance(value, list):
        out = []
        for v in value:
            out.extend(_strings(v))
        return out
    return []


def sample_for_schema(schema: Any) -> Any:
    """
    A deterministic value for a JSON schema: required properties only, string "sample", number 1, boolean
    true, arrays of one item, the first enum value.
    """
    if not isinstance(schema, Mapping):
        return "sample"
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    typ = schema.get("type")
    if isinstance(typ, str):
        typ = typ.lower()  # Vertex schemas spell types in upper case
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    if typ is None:
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return sample_for_schema(schema[key][0])
        typ = "object" if "properties" in schema else "string"
    if typ == "object":
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = schema.get("required")
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        return {name: sample_for_schema(props.get(name, {})) for name in required}
    if typ == "array":
        return [sample_for_schema(schema.get("items", {}))]
    if typ == "integer" or typ == "number":
        return 1
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    return "sample"


def tool_arguments_json(schema: Any) -> str:
    """The tool call's arguments as compact JSON text."""
    return json.dumps(sample_for_schema(schema), separators=(",", ":"))


def json_fragments(text: str, parts: int = 3) -> list[str]:
    """Split JSON text into C{parts} fragments, as providers stream tool arguments (the first may be short)."""
    if not text:
        return [""]
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


def thinking_text(user_text: str) -> str:
    """The deterministic reasoning shown in thinking blocks."""
    return f"The user wrote {len(user_text)} characters. I will echo them back, then add filler words."


def thinking_signature(text: str) -> str:
    """Base64 HMAC-SHA256 of the thinking text: opaque like the real one, but checkable by tests."""
    return base64.b64encode(hmac.new(SIGNATURE_KEY, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def stable_id(prefix: str, seed: str, length: int = 24) -> str:
    """A response id derived from the request, so repeated requests give the same id."""
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()
    return prefix + digest[:length]
