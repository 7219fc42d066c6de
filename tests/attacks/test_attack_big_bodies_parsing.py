"""
The fast paths behind issue #15 item 4 (big bodies) give exactly the answers of the slow ones: orjson parses
client bodies (sapproxy/edge.py) and writes JSON (translate/jsontext.py), the body's outline is gathered chunk
by chunk as it arrives, and a big body waits a reactor round before it is encoded (sapproxy/web/pause.py).
"""

from __future__ import annotations

import io
import json
import random
import re
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from sapproxy.edge import MAX_DEPTH, Outline, parse_body
from sapproxy.errors import GatewayError
from sapproxy.translate.jsontext import compact_json, json_text
from sapproxy.web.pause import BIG_BODY, after_big_body

SAME_AS_THE_STDLIB = [
    b'{"a":9223372036854775807,"b":-9223372036854775808,"c":18446744073709551615}',
    b'{"a":18446744073709551616,"b":-9223372036854775809,"c":123456789012345678901234567890}',
    b'{"a":[1.5,-0.0,1e-400,1E5,0.1,1e308],"b":"\\u00fc\\ud83d\\ude00 \\u2028\\u0000","c":null,"d":true}',
    b'{"a":1,"a":2}',
    b'{"text":"order 1234567890123456789012 shipped","n":3}',
    b' {"messages":[{"role":"user","content":"\xc3\xbc\xe6\x95\xb0"}]}\n',
]


@pytest.mark.parametrize("raw", SAME_AS_THE_STDLIB)
def test_a_body_parses_as_the_stdlib_parses_it(raw: bytes) -> None:
    parsed = parse_body(raw)
    expected = json.loads(raw)
    assert parsed == expected
    # Integers stay integers of the same value (orjson alone would read 2**64 as a float).
    assert json.dumps(parsed) == json.dumps(expected)


@pytest.mark.parametrize("raw, message", [
    (b'{"a":NaN}', "NaN is not a JSON number"),
    (b'{"a":-Infinity}', "-Infinity is not a JSON number"),
    (b'{"a":1e400}', "the number 1e400 is too large"),
    (b'{"a":\xff}', "not valid UTF-8 (byte 5)"),
    (b'[' * 2000 + b']' * 2000, f"nested deeper than {MAX_DEPTH} levels"),
    (b'[' * 101 + b']' * 101, f"nested deeper than {MAX_DEPTH} levels"),
    (b'{"a":1', "the request body is not valid JSON: Expecting ',' delimiter"),
])
def test_refusals_say_what_they_said_before(raw: bytes, message: str) -> None:
    with pytest.raises(GatewayError) as refused:
        parse_body(raw)
    assert refused.value.kind == "invalid_request"
    assert message in str(refused.value)


def test_lone_surrogates_are_still_repaired() -> None:
    assert parse_body(b'{"\\ud800k":["\\udfff",{"x":"a\\ud83d"}]}') == {"\ufffdk": ["\ufffd", {"x": "a\ufffd"}]}


def test_an_outline_fed_in_chunks_is_the_outline_of_the_whole() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        data = bytes(rng.choice(b"0123456789a[{ ") for _ in range(rng.randint(0, 60)))
        outline = Outline()
        i = 0
        while i < len(data):
            step = rng.randint(1, 8)
            outline.feed(data[i:i + step])
            i += step
        assert outline.size == len(data)
        assert outline.opening == data.count(b"[") + data.count(b"{")
        assert outline.long_number == (re.search(rb"[0-9]{19}", data) is not None), data


def test_a_long_number_split_across_chunks_is_kept_exact() -> None:
    outline = Outline()
    for chunk in (b'{"a":1234567', b"8901234", b'567890}'):
        outline.feed(chunk)
    assert parse_body(b'{"a":12345678901234567890}', outline) == {"a": 12345678901234567890}


def test_an_outline_of_other_bytes_is_not_used() -> None:
    stale = Outline()
    stale.feed(b"{}")
    assert parse_body(b'{"a":18446744073709551616}', stale) == {"a": 18446744073709551616}


def test_json_text_writes_what_the_stdlib_wrote() -> None:
    value = {"a": [1, 2.5, None, True], "ü": "数据 \n\t\"\\ \u2028\x7f\x00", "n": 18446744073709551616, "t": (1,)}
    assert json_text(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # What orjson will not write goes through the stdlib as before: non-string keys, and lone surrogates
    # (which no UTF-8 can hold: json_text fails as before, compact_json gives the text).
    assert json_text({1: 2}) == b'{"1":2}'
    assert compact_json({"a": "\ud800"}) == '{"a":"\ud800"}'
    with pytest.raises(UnicodeEncodeError):
        json_text({"a": "\ud800"})


class Body:
    def __init__(self, size: int) -> None:
        self.content = io.BytesIO(b" " * size)
        self.content.seek(size)


class Rounds:
    """
    The part of a reactor's loop that matters here: each round runs the calls that were due when it began
    (calls made meanwhile wait for the next round), then the reactor polls its sockets (L{ReactorBase.mainLoop}).
    L{Clock.advance} would run calls made meanwhile in the same round.
    """

    def __init__(self) -> None:
        self.pending: list[Any] = []

    def seconds(self) -> float:
        return 0.0

    def callLater(self, _delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        self.pending.append((f, args, kwargs))
        return Clock().callLater(0, lambda: None)  # an IDelayedCall for deferLater's canceller

    def round(self) -> None:
        due, self.pending = self.pending, []
        for f, args, kwargs in due:
            f(*args, **kwargs)


@pytest.mark.parametrize("size, rounds", [(0, 0), (BIG_BODY - 1, 0), (BIG_BODY, 2), (22 << 20, 2)])
def test_a_big_body_waits_two_reactor_rounds_a_small_one_none(size: int, rounds: int) -> None:
    reactor = Rounds()
    done = Deferred.fromCoroutine(after_big_body(reactor, Body(size)))
    for _ in range(rounds):
        assert not done.called  # the sockets are polled between the rounds: other requests are served
        reactor.round()
    assert done.called


def test_big_bodies_under_way_together_take_one_step_a_round_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    import sapproxy.edge as edge
    import sapproxy.web.pause as pause

    monkeypatch.setattr(edge, "PIECE", 64)
    steps: list[str] = []

    def counted(name: str) -> Any:
        def parse(raw: bytes, outline: Any) -> Any:
            pieces = edge.parse_in_pieces(raw, outline)
            while True:
                steps.append(name)
                try:
                    next(pieces)
                except StopIteration as done:
                    return done.value
                yield
        return parse

    reactor = Rounds()
    bodies = {name: json.dumps({"messages": [{"content": name * 100}] * 8}).encode() for name in "ab"}
    done = {}
    for name, raw in bodies.items():
        monkeypatch.setattr(pause, "parse_in_pieces", counted(name))
        done[name] = Deferred.fromCoroutine(pause.parse_big_body(reactor, raw, None))
    rounds = 0
    while not (done["a"].called and done["b"].called):
        before = len(steps)
        reactor.round()
        rounds += 1
        assert len(steps) - before <= 1, steps[before:]  # one step of one body, whatever the number under way
        assert rounds < 200
    assert steps.count("a") > 8 and steps.count("b") > 8
    assert "ab" in "".join(steps) and "ba" in "".join(steps)  # in turn
    for name, raw in bodies.items():
        assert done[name].result == json.loads(raw)
