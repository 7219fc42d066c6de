"""
The one compact JSON encoder of the gateway, and the parser of upstream stream events.

Everything sapproxy writes as JSON (client events and bodies, upstream request bodies, error bodies) goes
through L{json_text} or L{compact_json}: no spaces, non-ASCII characters written as UTF-8 rather than escaped.
That is the smallest faithful text (a model's output in any script is not inflated sixfold by C{\\uXXXX}) and
the same bytes whichever module serialises, so a template rendered in one place (see
L{sapproxy.translate.framing.sse.Rendered}) matches what the encoder would have written in another.

orjson writes it: a 22 MiB upstream body in ~40 ms where the stdlib encoder takes ~140 ms of the one reactor
thread (issue #15, item 4), and each client event of a stream in a tenth of the stdlib's instructions (issue
#18).  Upstream stream events are parsed by L{parse_json}, with msgspec: a third of the stdlib's instructions,
and, unlike orjson, integers beyond 64 bits read exactly.  Measured on the recorded chunk shapes
(bench/experiments/json_libs.py, instructions per 50-event Azure stream): parsing 2.66 M with json, 1.01 M
with orjson, 0.99 M with msgspec; encoding 3.77 M, 0.38 M, 0.52 M.

Both keep to the stdlib's values and bytes, falling back to it wherever the libraries differ:

  - parsing: msgspec refuses lone surrogates, C{NaN}/C{Infinity} and numbers that overflow a double, which
    the stdlib reads; the stdlib then reads them, and its non-finite numbers come back as L{_NonFinite} (a
    float), which orjson refuses to encode, so they are written by the stdlib again (C{NaN}, as before).
  - encoding: what orjson will not write (an integer beyond 64 bits, a non-string key, a string with a lone
    surrogate, a subclass of a builtin type) the stdlib writes (or fails to, as before: a lone surrogate
    cannot be UTF-8; L{compact_json} gives the text).  orjson writes some floats its own way (C{1e-7} and
    C{0.00001} where the stdlib writes C{1e-07} and C{1e-05}): an output up to 64 KiB with such a number in
    it is written again by the stdlib.  Floats are rare in these bodies and events; the check is two scans
    for C{e-} and C{0.0000}, and a regular expression only where one is found.
  - Two differences remain: a bigger output keeps orjson's notation of such a float (the same number; a
    regular expression over a 22 MiB body would cost more than orjson saves), and a plain C{float("nan")}
    or infinity made in Python (not read by L{parse_json}; the edge refuses them in client bodies) is
    written C{null}, valid JSON, where the stdlib wrote C{NaN}.

tests/translate/test_tr_jsontext.py checks both paths against the stdlib for arbitrary JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import orjson

__all__ = ["compact_json", "json_string", "json_text", "parse_json", "warm"]

_stdlib_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps = orjson.dumps
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_decode = msgspec.json.Decoder().decode
_DecodeError = (msgspec.DecodeError, UnicodeEncodeError)  # the latter: a str with a lone surrogate in it


def _no_default(value: Any) -> Any:
    raise TypeError


#: A number orjson writes unlike the stdlib: C{<digit>e-<one digit>} (the stdlib pads the exponent) or
#: C{0.0000} starting a value (the stdlib writes an exponent below 1e-4).  Text that looks so only costs a
#: needless fallback.  The definition: L{_orjson_own_float} finds the same without the regular expression.
_ORJSON_OWN_FLOAT = re.compile(rb"[0-9]e-[0-9](?![0-9])|(?:^|[:,\[])-?0\.0000").search
#: Outputs up to this size are checked for those numbers (events, ordinary bodies): a regular expression
#: over a 22 MiB body of text would cost more than orjson saved, so a bigger output keeps orjson's notation
#: of such a float (the same number).
_CHECKED = 64 * 1024

_DIGITS = b"0123456789"
_OPENERS = b":,["


def _orjson_own_float(out: bytes) -> bool:
    """
    Whether L{_ORJSON_OWN_FLOAT} matches in C{out}, found with C{bytes.find} and a look at the bytes around
    each hit: the expression tried both its branches at every byte of an output with C{e-} anywhere in it
    (a model named C{claude-4.5} is enough), ~90,000 instructions for a 300-byte chunk, three times per
    Claude stream (bench/stream_cost.py).  An output with many hits (prose full of hyphens) is left to the
    expression, which costs the same however many there are.
    """
    if out.count(b"e-") + out.count(b"0.0000") > 16:
        return _ORJSON_OWN_FLOAT(out) is not None
    find = out.find
    size = len(out)
    at = find(b"e-")
    while at >= 0:
        if at and out[at - 1] in _DIGITS and at + 2 < size and out[at + 2] in _DIGITS \
                and not (at + 3 < size and out[at + 3] in _DIGITS):
            return True
        at = find(b"e-", at + 2)
    at = find(b"0.0000")
    while at >= 0:
        if not at or out[at - 1] in _OPENERS or (out[at - 1] == 45 and (at == 1 or out[at - 2] in _OPENERS)):
            return True
        at = find(b"0.0000", at + 1)
    return False


def _fast(value: Any) -> bytes | None:
    try:
        out: bytes = _dumps(value, _no_default, _PASSTHROUGH)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    # The size first: the two scans alone took ~45 ms of a 22 MiB output, which is never checked.
    if len(out) <= _CHECKED and (b"e-" in out or b"0.0000" in out) and _orjson_own_float(out):
        return None
    return out


def json_text(value: Any) -> bytes:
    """C{value} as compact JSON, UTF-8 encoded: ready to write."""
    out = _fast(value)
    return out if out is not None else _stdlib_encode(value).encode("utf-8")


def json_string(text: str) -> bytes:
    """
    L{json_text} of a C{str} (the text of a stream's content delta, rendered into a template), without the
    check for orjson's own notation of floats: a string has no number in it, and orjson escapes a string as
    the stdlib does.  The check's regular expression ran on every delta whose text had C{e-} in it (English
    prose: "one-", "re-"), ~0.25 M instructions of a 50-event Claude stream (bench/stream_cost.py).
    """
    if type(text) is not str:
        return json_text(text)
    try:
        return _dumps(text, _no_default, _PASSTHROUGH)  # type: ignore[no-any-return]
    except TypeError:  # a lone surrogate: the stdlib's text (which cannot be UTF-8 either, as before)
        return _stdlib_encode(text).encode("utf-8")


def compact_json(value: Any) -> str:
    """C{value} as compact JSON text (a C{str}); see L{json_text}."""
    out = _fast(value)
    return out.decode("utf-8") if out is not None else _stdlib_encode(value)


class _NonFinite(float):
    """
    C{NaN} or an infinity the stdlib read: a float like any other, except that orjson will not encode it,
    so it is written as the stdlib writes it.
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


def warm(value: Any) -> None:
    """
    Encode C{value} once and drop the bytes, so that encoding it (or a body holding its strings) again later
    costs a fraction: the first encoding of a string that is not ASCII makes its UTF-8 form, which CPython
    keeps with the string.  A big client body is warmed piece by piece as it is parsed (L{sapproxy.edge}),
    between reactor turns; its upstream body, one encoding that cannot be split, then takes ~18 ms for 22 MiB
    instead of ~50 ms (bench/big_bodies.py).  The UTF-8 forms are what that encoding would have made anyway.
    """
    try:
        _dumps(value, _no_default, _PASSTHROUGH)
    except TypeError:
        pass
