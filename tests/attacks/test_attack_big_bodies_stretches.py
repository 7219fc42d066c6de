"""
A big body is parsed in bounded stretches (issue #15, item 4): the same values and refusals as one parse
(L{sapproxy.edge.parse_in_pieces} against L{sapproxy.edge.parse_body}), and no stretch of the reactor thread,
parse pieces or the plan and encoding after them, longer than the bar.

Stretches are measured in CPU time of this thread (C{time.thread_time}), so other processes on a shared
machine do not inflate them; the bar (60 ms) is well above the ~20 ms measured and far below the 230 ms of
the one stretch before.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import sapproxy.edge as edge  # noqa: E402
from big_bodies import code_conversation, conversation  # noqa: E402
from sapproxy.dispatch.plan import plan  # noqa: E402
from sapproxy.edge import MAX_DEPTH, Outline, parse_body, parse_in_pieces  # noqa: E402
from sapproxy.errors import GatewayError  # noqa: E402
from sapproxy.registry import WIRE_FORMATS  # noqa: E402
from sapproxy.translate.client.openai_chat import CLIENT_API  # noqa: E402
from sapproxy.translate.wire import WireTarget  # noqa: E402

#: The longest stretch accepted, CPU ms (see the module docstring).
STRETCH_LIMIT_MS = 60
#: The planning and encoding of a 22 MiB history of tool calls translated to another family (see below).
TRANSLATED_CODE_LIMIT_MS = 90


def run(raw: bytes) -> tuple[Any, list[float]]:
    """C{parse_in_pieces(raw)} driven to its end: the body and each stretch's CPU time in ms."""
    steps = parse_in_pieces(raw)
    times = []
    while True:
        started = time.thread_time()
        try:
            next(steps)
        except StopIteration as done:
            times.append((time.thread_time() - started) * 1000)
            return done.value, times
        times.append((time.thread_time() - started) * 1000)


def outcome(f: Any) -> Any:
    try:
        return ("ok", f())
    except GatewayError as e:
        return ("refused", str(e))


BODIES = [
    b'{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"\xc3\xbc\xe6\x95\xb0"}]}',
    b' {"a":[1,2,[3,{"b":[4.5,-0.0,1e-400,"x"]}]],"a":{"c":null},"d":true} \n',
    b'{"a":[18446744073709551616]}',
    b'{"a":["\\ud800",{"k\\udfff":1}]}',
    b'{"a":[NaN]}',
    b'{"a":[1e400]}',
    b'{"a":["\xff"]}',
    b'{"a":[' + b'[' * (MAX_DEPTH + 5) + b']' * (MAX_DEPTH + 5) + b']}',
    b'{"a":[' + b'[' * (MAX_DEPTH - 2) + b']' * (MAX_DEPTH - 2) + b']}',
    b'{"a":[1,2}',
    b'[1,2,3]',
    b'"text"',
]


@pytest.mark.parametrize("raw", BODIES)
@pytest.mark.parametrize("piece", [1, 8, 1 << 20])
def test_pieces_give_what_one_parse_gives(raw: bytes, piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge, "PIECE", piece)  # every part of these small bodies split, or none
    assert outcome(lambda: run(raw)[0]) == outcome(lambda: parse_body(raw))


def test_random_bodies_split_finely_give_what_one_parse_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge, "PIECE", 16)
    rng = random.Random(7)

    def value(depth: int) -> Any:
        kind = rng.randrange(7 if depth < 6 else 4)
        if kind == 0:
            return rng.randrange(-10**6, 10**6)
        if kind == 1:
            return rng.choice(["", "über", "数据 \n \"q\"", "x" * rng.randrange(40)])
        if kind == 2:
            return rng.choice([None, True, False, 1.5])
        if kind == 3:
            return rng.random()
        if kind in (4, 5):
            return [value(depth + 1) for _ in range(rng.randrange(5))]
        return {rng.choice("abcdef") + str(i): value(depth + 1) for i in range(rng.randrange(5))}

    for _ in range(300):
        body = {"messages": [value(0) for _ in range(rng.randrange(4))]}
        raw = json.dumps(body, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode()
        assert run(raw)[0] == parse_body(raw) == json.loads(raw)


@pytest.mark.parametrize("kind", ["prose", "code"])
def test_a_22_mib_conversation_is_parsed_and_encoded_in_short_stretches(kind: str) -> None:
    raw = conversation(22) if kind == "prose" else code_conversation(22)
    outline = Outline()
    outline.feed(raw)  # as the site does while the chunks arrive
    steps = parse_in_pieces(raw, outline)
    stretches = []
    while True:
        started = time.thread_time()
        try:
            next(steps)
        except StopIteration as done:
            stretches.append((time.thread_time() - started) * 1000)
            body = done.value
            break
        stretches.append((time.thread_time() - started) * 1000)
    assert body == json.loads(raw)
    encodes = {}
    for wire, model in (("openai_chat", "gpt-4.1"), ("bedrock_invoke", "anthropic.claude-sonnet-4-5"),
                        ("gemini", "gemini-2.5-pro")):
        started = time.thread_time()
        request = plan(CLIENT_API, CLIENT_API.call(body, model, {}), WIRE_FORMATS[wire], WireTarget(model)).request
        encodes[wire] = (time.thread_time() - started) * 1000
        assert len(request.body) > 18 << 20
    print(f"\n{kind}, {len(raw) / (1 << 20):.1f} MiB: {len(stretches)} parse stretches, longest {max(stretches):.1f} ms CPU, all {sum(stretches):.0f} ms; "
          + ", ".join(f"plan+encode {w} {ms:.1f} ms" for w, ms in encodes.items()))
    assert len(stretches) > 5
    assert max(stretches) < STRETCH_LIMIT_MS, stretches
    assert encodes["openai_chat"] < STRETCH_LIMIT_MS, encodes
    # Translated, an agent's history is rebuilt in that one step (tool-call arguments parsed, new bodies
    # encoded): 44-63 ms measured for the code shape, within the 100 ms bar but not the 50 ms aim.
    translated_limit = STRETCH_LIMIT_MS if kind == "prose" else TRANSLATED_CODE_LIMIT_MS
    assert max(encodes["bedrock_invoke"], encodes["gemini"]) < translated_limit, encodes


@pytest.mark.parametrize("raw", BODIES + [b'{"a":[1,2,3,4,5,6,7,8,9],"b":[[1],[2],[3],[4],[5]],"c":[1,2]}'])
def test_arrays_of_many_elements_are_one_piece_and_give_the_same(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge, "PIECE", 1)
    monkeypatch.setattr(edge, "_MAX_PARTS", 3)
    assert outcome(lambda: run(raw)[0]) == outcome(lambda: parse_body(raw))


def test_millions_of_tiny_elements_or_members_cost_no_more_than_one_parse() -> None:
    # Split naively each would cost ~1 us of Python: a container of more than a few thousand parts is parsed
    # whole (an array read to its first few thousand elements only, an object's members all read first).
    for raw in (b'{"input":[' + b"1," * 3_000_000 + b'1],"model":"m"}',
                b'{' + b"".join(b'"k%d":1,' % i for i in range(300_000)) + b'"z":0}'):
        started = time.thread_time()
        body, stretches = run(raw)
        took = time.thread_time() - started
        whole_started = time.thread_time()
        assert body == parse_body(raw)
        whole = time.thread_time() - whole_started
        assert took < 3 * whole + 0.05, (took, whole)
