"""
The long variant of the fuzz attack (issue #15, items 7 to 9): C{--count} mutated bodies per route and per seed
over the four POST routes of the in-memory gateway (the simulated SAP AI Core behind it), as the red team ran
it.  Reports, per route: status counts, 5xx, tracebacks logged, bodies refused as malformed after parsing, and
usage rows that a store could not hold.  The short variant runs in the test command
(C{tests/attacks/test_attack_fuzz.py}).

    .venv/bin/python bench/attack_fuzz.py --count 20000 --seeds 1 2
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "attacks"), str(ROOT / "tests" / "spine")]

from attrs import asdict  # noqa: E402
from twisted.logger import globalLogPublisher  # noqa: E402

from app_harness import Harness  # noqa: E402
from mutate import SEEDS, bodies  # noqa: E402


def unstorable(row: Any) -> bool:
    for value in asdict(row).values():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
            if "\x00" in value or "\n" in value:
                return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="bodies per route and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    failures: list[dict[str, Any]] = []
    malformed: collections.Counter[str] = collections.Counter()

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            failures.append(event)
        if "where" in event and "kind" in event:
            malformed[f"{event['kind']} at {event['where']}"] += 1

    globalLogPublisher.addObserver(observe)
    print("| seed | route | bodies | 2xx | 4xx | 5xx | tracebacks | malformed (400 after parsing) | unstorable rows | s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    bad = 0
    for seed in args.seeds:
        for route in SEEDS:
            harness = Harness()
            codes: collections.Counter[int] = collections.Counter()
            before_failures, before_malformed = len(failures), sum(malformed.values())
            started = time.monotonic()
            for raw in bodies(route, seed=seed, count=args.count):
                response, _ = harness.post(route, None, raw=raw)
                codes[response.code // 100] += 1
            took = time.monotonic() - started
            tracebacks = len(failures) - before_failures
            rows = sum(unstorable(r) for r in harness.rows.rows)
            bad += codes[5] + tracebacks + rows
            print(f"| {seed} | {route} | {args.count:,} | {codes[2]:,} | {codes[4]:,} | {codes[5]} | {tracebacks} | "
                  f"{sum(malformed.values()) - before_malformed} | {rows} | {took:.0f} |")
    for where, n in malformed.most_common(10):
        print(f"malformed: {n} x {where}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
