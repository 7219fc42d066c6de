"""
The one compact JSON encoder of the gateway, and the parser of upstream stream events.

Everything sapproxy writes as JSON (client events and bodies, upstream request bodies, error bodies) goes
through L{compact_json} or L{json_text}: no spaces, non-ASCII characters written as UTF-8 rather than
escaped.  That is the smallest faithful text (a model's output in any script is not inflated sixfold by
C{\\uXXXX}) and the same bytes whichever module serialises, so a template rendered in one place (see
L{sapproxy.translate.framing.sse.Rendered}) matches what the encoder would have written in another.

Both sit on a stream's per-event path (each upstream chunk parsed, each translated client event written),
where the stdlib's C{json} was the largest single cost of a pass-through stream.  Measured on the recorded
chunk shapes (bench/experiments/json_libs.py, instructions per 50-event Azure stream): parsing 2.66 M with
json, 1.01 M with orjson, 0.99 M with msgspec; encoding 3.77 M, 0.38 M, 0.52 M.  So L{parse_json} uses
msgspec (which, unlike orjson, reads integers beyond 64 bits exactly, so no text needs checking first) and
L{json_text} orjson (whose floats differ from the stdlib's in fewer ways than msgspec's), and both fall
back to the stdlib wherever the two would differ, so that a client sees exactly the bytes it saw before:

  - parsing: msgspec refuses lone surrogates, C{NaN}/C{Infinity} and numbers that overflow a double, which
    the stdlib reads; the stdlib then reads them, and its non-finite numbers come back as L{_NonFinite}
    (a float), which orjson refuses to encode, so they are written by the stdlib again (C{NaN}, not
    orjson's C{null}).
  - encoding: orjson refuses lone surrogates, integers beyond 64 bits, non-string keys and subclasses of
    the builtin types; and it writes some floats its own way (C{1e-9} and C{0.00001} where the stdlib
    writes C{1e-09} and C{1e-05}), so an output with C{e-} or C{0.0000} in it (two cheap scans; a regular
    expression then tells a number from text) is written again by the stdlib.  Floats are rare in client
    events; ids and text are what they carry.
  - A plain C{float("nan")} made by a translator (none does) would be written as C{null}, not C{NaN}.

tests/translate/test_tr_jsontext.py checks that both paths give the stdlib's values and bytes for arbitrary
JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import msgspec
import orjson

__all__ = ["compact_json", "json_text", "parse_json"]

#: C{value} as compact JSON text (a C{str}), by the stdlib: the reference the fast path keeps to.
compact_json: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_dumps = orjson.dumps
_decode = msgspec.json.Decoder().decode
_DecodeError = (msgspec.DecodeError, UnicodeEncodeError)  # the latter: a str with a lone surrogate in it
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
#: A number orjson writes unlike the stdlib: a one-digit negative exponent, or fixed notation below 1e-4.
_ORJSON_OWN_FLOAT = re.compile(rb"[0-9]e-[0-9](?![0-9])|(?:^|[:,\[])-?0\.0000").search


def _no_default(value: Any) -> Any:
    raise TypeError


def json_text(value: Any) -> bytes:
    """C{value} as compact JSON, UTF-8 encoded: ready to write (the bytes of L{compact_json}, faster)."""
    try:
        out: bytes = _dumps(value, _no_default, _PASSTHROUGH)
    except TypeError:
        return compact_json(value).encode("utf-8")
    if (b"e-" in out or b"0.0000" in out) and _ORJSON_OWN_FLOAT(out) is not None:
        return compact_json(value).encode("utf-8")
    return out


class _NonFinite(float):
    """
    C{NaN} or an infinity the stdlib read: a float like any other, except that orjson will not encode it,
    so L{json_text} writes it as the stdlib does.
    """

    __slots__ = ()


def _parse_float(text: str) -> float:
    value = float(text)
    return _NonFinite(value) if value - value != 0.0 else value


_std_loads = json.JSONDecoder(parse_float=_parse_float, parse_constant=_NonFinite).decode


def parse_json(data: str | bytes) -> Any:
    """
    One JSON text (an upstream event's data; bytes are UTF-8) as Python values, as C{json.loads} gives
    them; a C{ValueError} (C{json.JSONDecodeError} or C{UnicodeDecodeError}) where it is not JSON.
    """
    try:
        return _decode(data)
    except _DecodeError:
        pass
    return _std_loads(data if isinstance(data, str) else data.decode("utf-8"))
