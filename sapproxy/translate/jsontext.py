"""
The one compact JSON encoder of the gateway.

Everything sapproxy writes as JSON (client events and bodies, upstream request bodies, error bodies) goes
through L{compact_json}: no spaces, non-ASCII characters written as UTF-8 rather than escaped.  That is
the smallest faithful text (a model's output in any script is not inflated sixfold by C{\\uXXXX}) and the
same bytes whichever module serialises, so a template rendered in one place (see
L{sapproxy.translate.framing.sse.Rendered}) matches what the encoder would have written in another.

A bound C{JSONEncoder.encode} skips the argument handling of C{json.dumps} on every call.
"""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["compact_json", "json_text"]

#: C{value} as compact JSON text (a C{str}).
compact_json: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_text(value: Any) -> bytes:
    """C{value} as compact JSON, UTF-8 encoded: ready to write."""
    return compact_json(value).encode("utf-8")
