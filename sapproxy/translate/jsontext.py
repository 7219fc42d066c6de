"""
The one compact JSON encoder of the gateway.

Everything sapproxy writes as JSON (client events and bodies, upstream request bodies, error bodies) goes
through L{json_text} or L{compact_json}: no spaces, non-ASCII characters written as UTF-8 rather than escaped.
That is the smallest faithful text (a model's output in any script is not inflated sixfold by C{\\uXXXX}) and
the same bytes whichever module serialises, so a template rendered in one place (see
L{sapproxy.translate.framing.sse.Rendered}) matches what the encoder would have written in another.

orjson writes it: a 22 MiB upstream body in ~40 ms where the stdlib encoder takes ~140 ms of the one reactor
thread (issue #15, item 4), and small events several times faster too.  What orjson will not write (an integer
beyond 64 bits, a non-string key, a string with a lone surrogate, a float subclass) falls back to the stdlib
encoder, which writes it as before (or fails as before: a lone surrogate cannot be UTF-8).  Two differences
remain, both in values no client sends (the edge refuses non-finite numbers): NaN and infinities are written
C{null} (valid JSON, where the stdlib wrote the invalid C{NaN}), and a float's exponent has no padding
(C{1e-7}, the stdlib C{1e-07}; the same number).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["compact_json", "json_text"]

_stdlib_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps = orjson.dumps


def json_text(value: Any) -> bytes:
    """C{value} as compact JSON, UTF-8 encoded: ready to write."""
    try:
        return _dumps(value)
    except TypeError:  # orjson.JSONEncodeError is one
        return _stdlib_encode(value).encode("utf-8")


def compact_json(value: Any) -> str:
    """C{value} as compact JSON text (a C{str}); see L{json_text}."""
    try:
        return _dumps(value).decode("utf-8")
    except TypeError:
        return _stdlib_encode(value)
