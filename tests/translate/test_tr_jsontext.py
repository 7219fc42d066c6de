"""
The fast JSON path (orjson, sapproxy.translate.jsontext) gives what the stdlib gives: the same values parsed
from any text, the same bytes encoded from any value, the same refusals, on every value the stdlib handles;
and the stream encoders and sources that use it write the stdlib's bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sapproxy.translate.framing.pipeline import SSEJsonSource, UpstreamStreamError
from sapproxy.translate.framing.sse import encode_data, encode_event
from sapproxy.translate.jsontext import compact_json, json_string, json_text, parse_json

#: The reference: what the stdlib writes.
stdlib_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: Any text, lone surrogates included (a translator may carry one from the stdlib's parse of C{"\\ud800"}).
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
#: Integers around and beyond orjson's 64 bits.
integers = st.one_of(st.integers(), st.integers(-(2**64) - 5, 2**64 + 5), st.integers(-(10**40), 10**40),
                     st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64]))
finite_floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                          st.sampled_from([1e16, 1e-5, 1e-4, 1.5e300, 5e-324, -0.0, 0.0, 123456789012345.6, 1e22]))
scalars = st.one_of(st.none(), st.booleans(), integers, finite_floats, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(any_text, inner, max_size=5)),
    max_leaves=30,
)
#: What the stdlib reads beyond JSON proper: C{NaN}, infinities (also as overflowing numbers).
non_finite = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])


def stdlib_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def same(a: Any, b: Any) -> bool:
    """Equal as values, types included (1 is not 1.0 here, NaN is NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b) and not (isinstance(a, float) and isinstance(b, float)):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def encodable(value: Any) -> bool:
    try:
        stdlib_text(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(value=json_values)
def test_encoding_gives_the_stdlib_bytes(value: Any) -> None:
    if encodable(value):
        assert json_text(value) == stdlib_text(value).encode("utf-8")
        assert compact_json(value) == stdlib_text(value)
    else:  # a lone surrogate: the stdlib's refusal, unchanged
        with pytest.raises(UnicodeEncodeError):
            json_text(value)
        assert compact_json(value) == stdlib_text(value)  # the text, for a writer that replaces what UTF-8 cannot hold


@settings(max_examples=1000, deadline=None)
@given(out=st.one_of(st.binary(max_size=12), st.text("0123456789e-.:,[ x", max_size=40).map(str.encode)))
def test_orjson_s_own_floats_are_found_as_the_expression_finds_them(out: bytes) -> None:
    from sapproxy.translate import jsontext

    assert jsontext._orjson_own_float(out) == (jsontext._ORJSON_OWN_FLOAT(out) is not None)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.text("1e-5 0.00001\\\"\x00\x1f\x7f\u2028"), st.just("\ud800 1e-5")))
def test_a_string_is_written_as_json_text_writes_it(text: str) -> None:
    """json_string skips the float check only: for any text, json_text's bytes (the stdlib's), or its error."""

    def outcome(fn: Any) -> Any:
        try:
            return fn(text)
        except Exception as e:
            return type(e)

    assert outcome(json_string) == outcome(json_text)
    if encodable(text):
        assert json_string(text) == stdlib_bytes(text)


@settings(max_examples=600, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), spaced=st.booleans())
def test_parsing_gives_the_stdlib_values(value: Any, ascii_only: bool, spaced: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    assert same(parse_json(text), json.loads(text))
    if ascii_only:  # bytes as the event-stream decoder passes them
        assert same(parse_json(text.encode("ascii")), json.loads(text))


@settings(max_examples=300, deadline=None)
@given(value=json_values, constant=non_finite)
def test_what_the_stdlib_reads_beyond_json_is_written_back_as_the_stdlib_would(value: Any, constant: str) -> None:
    text = "[" + json.dumps(value) + "," + constant + "]"
    parsed = parse_json(text)
    assert same(parsed, json.loads(text))
    if encodable(parsed):
        assert json_text(parsed) == stdlib_text(json.loads(text)).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(any_text, st.builds(lambda v, junk: json.dumps(v) + junk, json_values,
                                          st.sampled_from(["", ",", "]", "}", " x", "\x00", "\ud800"]))))
def test_text_the_stdlib_refuses_is_refused_and_the_rest_read_alike(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_json(text)
        return
    assert same(parse_json(text), expected)


def test_the_stdlib_s_quirks_are_kept() -> None:
    assert json_text({"n": 2**64, "f": 1e16, "g": 1e-5}) == b'{"n":18446744073709551616,"f":1e+16,"g":1e-05}'
    assert parse_json("[18446744073709551616,-9223372036854775809]") == [2**64, -(2**63) - 1]
    assert type(parse_json("12345678901234567890123")) is int
    assert parse_json('"\\ud83d"') == "\ud83d"
    assert json_text({1: "a", None: True}) == b'{"1":"a","null":true}'  # non-string keys, the stdlib's way
    assert json_text(parse_json("[NaN,1e400]")) == b"[NaN,Infinity]"


class Named(dict):  # type: ignore[type-arg]
    pass


def test_subclasses_and_strangers_go_the_stdlib_s_way() -> None:
    assert json_text(Named(a=1)) == b'{"a":1}'
    with pytest.raises(TypeError):  # the stdlib refuses what orjson alone would write
        json_text({"when": __import__("datetime").datetime(2025, 1, 1)})


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(any_text, json_values, max_size=4), kind=any_text)
def test_client_event_bytes_are_the_stdlib_s(payload: dict[str, Any], kind: str) -> None:
    if not (encodable(payload) and encodable(kind)):
        return
    assert encode_data(payload) == b"data: " + stdlib_text(payload).encode("utf-8") + b"\n\n"
    event = {**payload, "type": kind}  # the event named by its type, whatever the payload had
    assert encode_event(event) == (b"event: " + kind.encode("utf-8") + b"\ndata: "
                                   + stdlib_text(event).encode("utf-8") + b"\n\n")


@settings(max_examples=300, deadline=None)
@given(values=st.lists(json_values, min_size=1, max_size=4))
def test_an_sse_source_reads_the_events_the_stdlib_reads(values: list[Any]) -> None:
    values = [v for v in values if encodable(v)]
    body = b"".join(b"data: " + stdlib_bytes(v) + b"\n\n" for v in values)
    source = SSEJsonSource()
    got = source.feed(body) + source.finish()
    assert len(got) == len(values) and all(same(g, v) or same(g, json.loads(json.dumps(v))) for g, v in
                                           zip(got, values))


def test_an_sse_source_still_refuses_what_is_not_json() -> None:
    source = SSEJsonSource()
    with pytest.raises(UpstreamStreamError):
        source.feed(b'data: {"a":\n\n')


def test_a_big_body_is_not_scanned_for_floats_at_the_stdlib_s_cost() -> None:
    text = "re-run e-mail 0.0000 " * 10_000  # text that looks like orjson's floats, in a 200 KiB body
    assert json_text({"content": text, "t": 1e-7}) == b'{"content":"' + text.encode() + b'","t":1e-7}'
    assert json_text({"content": text[:6000], "t": 1e-7}) == stdlib_text({"content": text[:6000], "t": 1e-7}).encode()
