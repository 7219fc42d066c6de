"""
A whole response named as the client asked, keeping the upstream's JSON where it came with it.
"""

from __future__ import annotations

from typing import Any

from sapproxy.translate.framing.sse import Rendered
from sapproxy.translate.jsontext import json_text


def named_response(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """
    A whole response with its top-level C{model} set to C{model}; for a L{Rendered} one (the
    dispatcher reads whole responses so), a new L{Rendered} of that JSON with its C{model} edited, so the
    client's body is not serialised again; where the edit is not unambiguous (C{"model":"..."} spelled
    otherwise or more than once; an unescaped one can only be a key), a plain dict that the encoder
    serialises.
    """
    upstream = resp.get("model")
    if type(resp) is not Rendered:
        resp["model"] = model
        return resp
    raw: bytes = resp.json
    if upstream != model:
        needle = b'"model":' + json_text(upstream) if isinstance(upstream, str) else b""
        if not needle or raw.count(needle) != 1:
            plain = dict(resp)
            plain["model"] = model
            return plain
        raw = raw.replace(needle, b'"model":' + json_text(model))
    out = Rendered(resp, raw)
    out["model"] = model
    return out
