"""
Attack: mutated request bodies over the four POST routes (issue #15, items 7 to 9).

The red team's 20,000 mutated bodies per route gave hundreds of 500s with tracebacks: lone surrogates, wrong
types inside blocks, C{"stream_options": [1]}, 480 levels of nesting, NaN.  Here the same mutations, with a
fixed seed and a count short enough for the test command (the long run: C{bench/attack_fuzz.py}), must give
no 5xx, every error a JSON body in the route's dialect, no traceback in the log, and usage rows that any
store can hold.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from attrs import asdict
from twisted.logger import globalLogPublisher

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "spine")]

from app_harness import Harness  # noqa: E402
from mutate import SEEDS, bodies  # noqa: E402

#: Bodies per route in the test command; the red team's figure (20,000) is the long run's default.
COUNT = 600


class LogWatch:
    def __init__(self) -> None:
        self.failures: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            self.failures.append(event)


@pytest.fixture
def watch() -> Any:
    w = LogWatch()
    globalLogPublisher.addObserver(w)
    yield w
    globalLogPublisher.removeObserver(w)


def assert_dialect(route: str, code: int, raw: bytes) -> None:
    assert code < 500, (route, code, raw[:300])
    if code == 200:
        return
    parsed = json.loads(raw)
    if route.startswith("/v1/messages"):
        assert parsed["type"] == "error" and isinstance(parsed["error"]["message"], str), parsed
    else:
        assert isinstance(parsed["error"]["message"], str) and isinstance(parsed["error"]["type"], str), parsed


def assert_storable(row: Any) -> None:
    """
    Every text field of a usage row encodes as UTF-8 (no lone surrogate) and has no NUL nor newline.
    """
    for name, value in asdict(row).items():
        if isinstance(value, str):
            value.encode("utf-8")  # no lone surrogate
            assert "\x00" not in value and "\n" not in value, (name, value)


@pytest.mark.parametrize("route", list(SEEDS))
def test_mutated_bodies_never_5xx_nor_traceback(route: str, watch: LogWatch) -> None:
    harness = Harness()
    codes: dict[int, int] = {}
    for raw in bodies(route, seed=15, count=COUNT):
        response, body = harness.post(route, None, raw=raw)
        codes[response.code] = codes.get(response.code, 0) + 1
        assert_dialect(route, response.code, body)
    assert not watch.failures, [e.get("log_failure").getTraceback()[-600:] for e in watch.failures[:3]]
    # The mutations really do exercise both sides: some bodies pass, most are refused.
    assert codes.get(200, 0) > COUNT // 10 and codes.get(400, 0) > COUNT // 4, codes
    for row in harness.rows.rows:
        assert_storable(row)


def post(route: str, text: str) -> tuple[int, Any, Harness]:
    harness = Harness()
    response, raw = harness.post(route, None, raw=text.encode())
    return response.code, json.loads(raw), harness


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    code, body, harness = post("/v1/chat/completions",
                               '{"model":"gpt-4.1","temperature":%s,"messages":[{"role":"user","content":"hi"}]}'
                               % literal)
    assert code == 400 and body["error"]["type"] == "invalid_request_error", body
    assert "not valid JSON" in body["error"]["message"]


def test_big_integer_within_python_limit_is_forwarded_and_beyond_refused() -> None:
    code, body, _ = post("/v1/chat/completions", '{"model":"gpt-4.1","seed":%s,"messages":[{"role":"user",'
                         '"content":"hi"}]}' % ("9" * 4000))
    assert code in (200, 400), body  # the upstream judges a large seed; the gateway forwards valid JSON
    code, body, _ = post("/v1/messages", '{"model":"gpt-4.1","max_tokens":%s,"messages":[{"role":"user",'
                         '"content":"hi"}]}' % ("9" * 5000))
    assert code == 400 and body["type"] == "error", body


@pytest.mark.parametrize("depth,kind", [(101, "["), (480, "["), (480, "{"), (5000, "[")])
def test_deep_nesting_is_refused_with_400(depth: int, kind: str, watch: LogWatch) -> None:
    opening, closing = ("[", "]") if kind == "[" else ('{"a":', "}")
    nested = opening * depth + "1" + closing * depth
    code, body, _ = post("/v1/messages", '{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user",'
                         '"content":"hi"}],"metadata":%s}' % nested)
    assert code == 400 and body["type"] == "error", body
    assert "nested deeper than 100 levels" in body["error"]["message"]
    assert not watch.failures


def test_nesting_within_the_limit_passes() -> None:
    nested = '{"type":"object","properties":{"a":' * 30 + '{"type":"string"}' + "}}" * 30
    code, body, _ = post("/v1/messages", '{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[{"role":"user",'
                         '"content":"hi"}],"tools":[{"name":"t","input_schema":%s}]}' % nested)
    assert code == 200, body


@pytest.mark.parametrize("route,extra", [
    ("/v1/chat/completions", '"messages":[{"role":"user","content":"a\\ud800b"}]'),
    ("/v1/messages", '"max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"\\udfff"}]}]'),
    ("/v1/embeddings", '"input":["x\\ud83d"]'),
    ("/v1/messages/count_tokens", '"messages":[{"role":"user","content":"\\ud800"}]'),
])
def test_lone_surrogates_are_replaced_and_served(route: str, extra: str, watch: LogWatch) -> None:
    model = "text-embedding-3-small" if "embeddings" in route else "claude-\\ud800-sonnet" \
        if route == "/v1/messages" else "gpt-4.1"
    code, body, harness = post(route, '{"model":"%s",%s}' % (model, extra))
    assert code == 200, body
    assert not watch.failures
    for row in harness.rows.rows:
        assert_storable(row)
    if route == "/v1/messages":
        assert harness.rows.rows[-1].model_requested == "claude-\ufffd-sonnet"


@pytest.mark.parametrize("name,stored", [("\ud800", "\ufffd"), ("gpt\x00x", "gpt\\x00x"),
                                          ("gpt\nPOST /v1/x 200 forged", "gpt\\nPOST /v1/x 200 forged")])
def test_hostile_model_names_get_404_and_a_storable_row(name: str, stored: str) -> None:
    harness = Harness()
    response, raw = harness.post("/v1/chat/completions", None, raw=json.dumps(
        {"model": name, "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert response.code == 404, raw
    row = harness.rows.rows[-1]
    assert row.model_requested == stored
    assert_storable(row)


def test_model_names_are_bounded() -> None:
    harness = Harness()
    for route in SEEDS:
        response, raw = harness.post(route, {"model": "claude-sonnet-" + "x" * 300, "max_tokens": 5,
                                             "messages": [{"role": "user", "content": "hi"}], "input": "x"})
        assert response.code == 400, raw
        assert b"at most 256 characters" in raw
    response, raw = harness.post("/v1/chat/completions", {"model": "x" * (1 << 20), "messages": []})
    assert response.code == 400 and len(raw) < 1000
