"""
Attack: big bodies and count_tokens (issue #15, item 4).

22 MiB to C{/v1/messages/count_tokens} held every other request for 20.9 s (a pure-Python tokenizer on the
one reactor thread), and count_tokens was never rate-limited.  Now a request tokenises at most
TOKENIZE_BUDGET characters exactly and extrapolates the rest, and count_tokens is counted by the limiter.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spine"))

from app_harness import TOKEN, Harness  # noqa: E402
from sapproxy.auth import ClientIdentity  # noqa: E402
from sapproxy.ratelimit import make_rate_limiter  # noqa: E402
from sapproxy.translate.counting import count_tokens  # noqa: E402

WORDS = ["gateway", "stream", "token", "def", "return", "upstream", "the", "of", "Bedrock", "{", "}", "42",
         "über", "数据", "deployment", "\n", "client", "retry"]


def text(chars: int, seed: int = 4) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def test_a_22_mib_count_is_fast() -> None:
    h = Harness(max_body_bytes=64 * 1024 * 1024)
    body = json.dumps({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": text(1 << 20) * 22}]})
    started = time.perf_counter()
    response, raw = h.post("/v1/messages/count_tokens", None, raw=body.encode())
    took = time.perf_counter() - started
    assert response.code == 200, raw
    assert json.loads(raw)["input_tokens"] > 1_000_000
    # The red team measured 20.9 s here; now about 0.25 s, most of it parsing 22 MiB of JSON (the bound leaves
    # room for a loaded machine).
    assert took < 5.0, took


def test_extrapolated_counts_stay_close_to_exact() -> None:
    import sapproxy.translate.counting as counting

    long = {"messages": [{"role": "user", "content": text(600_000, seed=9)}]}
    estimated = count_tokens(long, "claude")
    budget = counting.TOKENIZE_BUDGET
    try:
        counting.TOKENIZE_BUDGET = 10 ** 9
        exact = count_tokens(long, "claude")
    finally:
        counting.TOKENIZE_BUDGET = budget
    assert abs(estimated - exact) / exact < 0.05, (estimated, exact)


def test_count_tokens_is_rate_limited() -> None:
    h = Harness()
    limited = ClientIdentity(key_id="abc123abc123", name="limited", rpm=3)

    class Auth:
        def identify(self, token: str | None) -> ClientIdentity | None:
            return limited if token == TOKEN else None

    h.services = attrs.evolve(h.services, rate_limiter=make_rate_limiter(None, h.clock), authenticator=Auth())
    from treq.testing import StubTreq

    from sapproxy.web.app import build_app
    from sapproxy.web.frame import ServicesRef

    h.client = StubTreq(build_app(ServicesRef(h.services)).resource())
    codes = [h.post("/v1/messages/count_tokens", {"model": "claude-sonnet-4-5",
                                                  "messages": [{"role": "user", "content": "hi"}]})[0].code
             for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
