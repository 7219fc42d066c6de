"""
The edge: where text from a client becomes something every later part of the gateway can hold safely.

A client's JSON may carry what Python parses but nothing downstream can use: a lone UTF-16 surrogate
(C{"\\ud800"}) cannot be encoded as UTF-8, so the upstream body, the usage row and the log line all fail on
it; C{NaN} and C{Infinity} (and C{1e400}, which parses to infinity) are not JSON, so forwarding them sends
the upstream an invalid body; a few hundred levels of nesting in a kilobyte pass the parser but overflow
the stack of any recursive walk after it (a deepcopy, a translator).  Each is dealt with once, here, when
the body is parsed:

  - lone surrogates become U+FFFD, the replacement character, in strings and keys alike (a valid pair,
    C{"\\ud83d\\ude00"}, is one character by then and is untouched);
  - non-finite numbers are refused with a 400, as the upstream APIs refuse them;
  - nesting deeper than L{MAX_DEPTH} is refused with a 400.

The parse itself is orjson's when it can be (a 22 MiB body in ~45 ms where the stdlib takes ~90 ms, on the one
reactor thread every other request waits for).  orjson is stricter than the stdlib in ways that matter here, so
every body it refuses (lone surrogates, C{NaN}, C{1e400}, invalid UTF-8, nesting past 1,024, a BOM) is parsed
again by the stdlib, which gives today's repair or today's message; and a body with a run of 19 or more digits
skips it, since orjson reads an integer beyond 64 bits as a float, losing digits the stdlib keeps.

Text that goes into a usage row or a log line (the model name, the user agent) is also made printable with
L{printable}: control characters (NUL, which PostgreSQL cannot store; newlines, which forge log lines) are
written as visible escapes.  Model names longer than L{MAX_NAME} are refused: they are not names, and each
distinct one would otherwise be kept in caches, logs and rows.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, Callable, Generator

import msgspec
import orjson
from twisted.logger import Logger
from twisted.python.failure import Failure

from sapproxy.errors import GatewayError
from sapproxy.translate.jsontext import warm

_log = Logger()

#: The deepest nesting of arrays and objects a request body may have.  Real bodies (tool schemas included)
#: stay well under 40; the translators and Python's own recursion limit are safe far beyond this.
MAX_DEPTH = 100

#: The longest model name accepted, in characters.
MAX_NAME = 256

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON escape of a surrogate in the raw body: the only way a (lone) surrogate can arrive, since the body
#: itself is checked to be valid UTF-8, which cannot encode one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
#: C0 and C1 controls, DEL, the line and paragraph separators, and lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class _NonFinite(ValueError):
    pass


def _constant(name: str) -> float:
    raise _NonFinite(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFinite(f"the number {text[:40]} is too large")
    return value


_decoder = json.JSONDecoder(parse_constant=_constant, parse_float=_float)


def parse_body(raw: bytes, outline: Outline | None = None) -> Any:
    """
    A client's request body, parsed and made safe (see the module's docstring).

    @param outline: C{raw}'s outline when it was gathered as the bytes arrived (L{Outline}); made here if not.
    @raise GatewayError: C{invalid_request}, with a message that says what is wrong.
    """
    if outline is None or outline.size != len(raw):
        outline = Outline()
        outline.feed(raw)
    body = _REFUSED if outline.long_number else _fast(raw)
    if body is _REFUSED:
        body, surrogates = _strict(raw), _SURROGATE_ESCAPE.search(raw) is not None
    else:
        surrogates = False  # orjson refuses lone surrogates, and a valid pair is one character by now
    # Depth cannot exceed the number of opening brackets: most bodies skip the walk on that count alone.
    if surrogates or outline.opening > MAX_DEPTH:
        body = _walk(body, surrogates)
    return body


_REFUSED = object()
#: Every digit as C{0} (a long run of them is then found by one C{find}; a regex takes 8x as long) and C{{} as
#: C{[} (the opening brackets are counted once).
_OUTLINE = bytes.maketrans(b"123456789{", b"000000000[")
#: 19 digits: the shortest integer literal that may fall outside 64 bits (2**63 has 19).  Digits inside
#: strings send a body the slow way too; that costs time, never a different answer.
_LONG_NUMBER_DIGITS = 19
_LONG_NUMBER = b"0" * _LONG_NUMBER_DIGITS


class Outline:
    """
    What L{parse_body} reads of a body's bytes besides parsing them: how many arrays and objects it opens (at
    most; brackets in strings count too) and whether it has a run of 19 or more digits.  Fed chunk by chunk
    as the body arrives (L{sapproxy.site.TrackingRequest}), the ~1 ns a byte it costs is spread over the
    reactor's turns instead of adding to the parse, which cannot be split.

    @ivar size: the bytes fed so far (an outline of other bytes than the body's is ignored).
    """

    def __init__(self) -> None:
        self.size = 0
        self.opening = 0
        self.long_number = False
        self._trailing_digits = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        outline = chunk.translate(_OUTLINE)
        self.opening += outline.count(b"[")
        if self.long_number:
            return
        if outline.find(_LONG_NUMBER) >= 0:
            self.long_number = True
            return
        # A run may span chunks: the digits that ended the last chunk plus those that begin this one.
        leading = len(outline) - len(outline.lstrip(b"0"))
        if leading == len(outline):
            self._trailing_digits += leading
        else:
            if self._trailing_digits + leading >= _LONG_NUMBER_DIGITS:
                self.long_number = True
            self._trailing_digits = len(outline) - len(outline.rstrip(b"0"))
        if self._trailing_digits >= _LONG_NUMBER_DIGITS:
            self.long_number = True


def _fast(raw: bytes | memoryview) -> Any:
    """C{raw} parsed by orjson, or L{_REFUSED} when the stdlib must parse it (see the module docstring)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _REFUSED


#: The parse work (bytes) a big body does between two yields of L{parse_in_pieces}: a few ms of CPU.
PIECE = 1 << 20
#: A container with more parts than this is parsed whole, as one piece: split, each part costs ~1 us of Python
#: (a body of a million tiny members or elements would take seconds).  An array is read to its first few
#: thousand elements and the rest only skipped (msgspec ignores an array's elements past a struct's fields), so
#: a huge one costs a scan, not millions of objects; an object's members are all read (about what parsing them
#: costs, in one call), then it is parsed whole.
_MAX_PARTS = 4096
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*").match
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_NO_PART = msgspec.Raw(b"")


@functools.cache
def _array_decoder(parts: int) -> Callable[[Any], Any]:
    """A decoder of an array's first C{parts} elements as raw JSON (unset ones empty); ~20 ms to make, once."""
    fields = [(f"p{i}", msgspec.Raw, _NO_PART) for i in range(parts)]
    return msgspec.json.Decoder(msgspec.defstruct("ArrayParts", fields, array_like=True)).decode


def _array_parts(view: memoryview) -> list[Any] | None:
    """The elements of the array C{view} as raw JSON, or L{None} when it has more than L{_MAX_PARTS}."""
    parts = msgspec.structs.astuple(_array_decoder(_MAX_PARTS)(view))
    if len(parts[-1]):
        return None  # maybe more than that
    count = 0
    for part in parts:
        if not len(part):
            break
        count += 1
    return list(parts[:count])


class _Unsure(Exception):
    """The piecewise parse met what only the whole parse answers as the gateway does (see L{parse_in_pieces})."""


def parse_in_pieces(raw: bytes, outline: Outline | None = None) -> Generator[None, None, Any]:
    """
    L{parse_body}'s answer for a big body, worked out in stretches of about L{PIECE} bytes: a generator that
    yields between them (so that its driver can let the reactor serve other requests) and returns the body.

    The body's structure is split by msgspec, which reads an object's members or an array's elements as raw
    JSON without parsing them (~0.5 ns a byte); the parts are split again while they are bigger than
    L{PIECE}, and each small part is parsed by orjson and warmed for its encoding upstream
    (L{sapproxy.translate.jsontext.warm}).  The values are the same as one parse's; anything this path is not
    sure of (a long number, a part orjson refuses: lone surrogates, C{NaN}, invalid UTF-8; a key with a
    surrogate; a structure msgspec refuses; nesting past L{MAX_DEPTH}) is parsed by L{parse_body} whole, in
    one stretch, with its repairs and messages; a container of more than L{_MAX_PARTS} parts is one piece.

    @raise GatewayError: as L{parse_body}.
    """
    if outline is None or outline.size != len(raw):
        outline = Outline()
        outline.feed(raw)
    if outline.long_number:
        return parse_body(raw, outline)
    pieces = _Pieces(check_depth=outline.opening > MAX_DEPTH)
    try:
        body = yield from pieces.value(raw, 0)
    except _Unsure:
        yield
        return parse_body(raw, outline)
    return body


class _Pieces:
    def __init__(self, check_depth: bool) -> None:
        self.check_depth = check_depth
        self.work = 0

    def value(self, part: Any, depth: int) -> Generator[None, None, Any]:
        """The value of C{part} (bytes or a C{msgspec.Raw}), C{depth} levels inside the body."""
        size = len(part)
        if size > PIECE:
            view = memoryview(part)
            spaces = _LEADING_SPACE(view)
            start = spaces.end() if spaces is not None else 0
            first = view[start:start + 1].tobytes()
            if first == b"{" or first == b"[":
                if depth >= MAX_DEPTH:
                    raise _Unsure()
                try:
                    parts = _OBJECT(view) if first == b"{" else _array_parts(view)
                except msgspec.DecodeError:
                    raise _Unsure() from None
                del view
                self.work += size // 4  # msgspec's scan, about a quarter of a parse's time a byte
                if self.work >= PIECE:
                    self.work = 0
                    yield
                if isinstance(parts, dict) and len(parts) <= _MAX_PARTS:
                    if any(_SURROGATE.search(key) for key in parts):
                        raise _Unsure()
                    result: dict[str, Any] = {}
                    for key in list(parts):
                        result[key] = yield from self.value(parts.pop(key), depth + 1)
                    return result
                if isinstance(parts, list):
                    items: list[Any] = []
                    parts.reverse()
                    while parts:
                        items.append((yield from self.value(parts.pop(), depth + 1)))
                    return items
                del parts  # a container of very many parts: one piece
        value = _fast(memoryview(part))
        if value is _REFUSED:
            raise _Unsure()
        if self.check_depth and isinstance(value, (dict, list)):
            _walk(value, False, depth)
        warm(value)
        self.work += size
        if self.work >= PIECE:
            self.work = 0
            yield
        return value


def _strict(raw: bytes) -> Any:
    """
    C{raw} parsed by the stdlib, with the gateway's refusals: the reference behaviour the fast path keeps.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GatewayError("invalid_request", f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        return _decoder.decode(text)
    except RecursionError:
        raise GatewayError("invalid_request", f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except _NonFinite as e:
        raise GatewayError("invalid_request", f"the request body is not valid JSON: {e}") from None
    except ValueError as e:
        # Includes integers longer than Python's conversion limit (4,300 digits).
        raise GatewayError("invalid_request", f"the request body is not valid JSON: {str(e)[:200]}") from None


def _walk(value: Any, fix_strings: bool, depth: int = 0) -> Any:
    """
    Check the nesting depth of C{value} (itself C{depth} levels inside the body) and, when C{fix_strings},
    replace lone surrogates in every string; iterative, so that depth itself cannot overflow the stack.
    """
    if fix_strings and isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    stack: list[tuple[Any, int]] = [(value, depth + 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GatewayError("invalid_request", f"the request body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            if fix_strings and any(_SURROGATE.search(k) for k in node):
                fixed = {_SURROGATE.sub("\ufffd", k): v for k, v in node.items()}
                node.clear()
                node.update(fixed)
            for key, child in node.items():
                if isinstance(child, str):
                    if fix_strings and _SURROGATE.search(child):
                        node[key] = _SURROGATE.sub("\ufffd", child)
                elif isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                if isinstance(child, str):
                    if fix_strings and _SURROGATE.search(child):
                        node[i] = _SURROGATE.sub("\ufffd", child)
                elif isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
    return value


def printable(text: str, limit: int | None = None) -> str:
    """
    C{text} safe for a log line and a database row: control characters and lone surrogates written as
    visible escapes (C{\\x00}, C{\\n}, C{\\ud800}); cut to C{limit} characters when given.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit]
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def model_name(value: Any) -> str:
    """
    The model name a client sent, checked: a non-empty string of at most L{MAX_NAME} characters.

    @raise GatewayError: C{invalid_request} otherwise.
    """
    if not isinstance(value, str) or not value:
        raise GatewayError("invalid_request", "model: required, a string naming the model", param="model")
    if len(value) > MAX_NAME:
        raise GatewayError("invalid_request", f"model: a model name is at most {MAX_NAME} characters "
                           f"(got {len(value)})", param="model")
    return value


#: What reading a client's structure fails with when a value has the wrong type where the checks before
#: translation did not look (C{{"type": []}} inside a block, C{"stream_options": [1]}).
MALFORMED = (TypeError, AttributeError, KeyError, IndexError, ValueError)


def malformed(error: Exception, endpoint: str, request_id: str, attempts: int) -> GatewayError:
    """
    The answer to one of L{MALFORMED} raised while a request was handled.

    Before any upstream attempt the structure came from the client alone, so it is the client's mistake: a
    400 naming what could not be read, and one log line without a traceback (a client must not be able to
    fill the log).  After an attempt it is the gateway's own failure: logged with its traceback, a 500 (the
    dispatcher turns what breaks while it handles an upstream's answer into one itself).
    """
    if attempts:
        _log.failure("unexpected error in {endpoint}", Failure(error, type(error), error.__traceback__),
                     endpoint=endpoint)
        return GatewayError("api_error", f"internal error in the gateway; request id {request_id}")
    where = _innermost(error)
    _log.info("{endpoint}: malformed request {request_id} refused: {kind}: {error} (at {where})",
              endpoint=endpoint, request_id=request_id, kind=type(error).__name__,
              error=printable(str(error), 200), where=where)
    return GatewayError("invalid_request", "the request has a value of the wrong type or shape where the "
                        f"gateway expected another ({type(error).__name__}: {printable(str(error), 200)})")


def _innermost(error: BaseException) -> str:
    tb = error.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno} {code.co_name}"
