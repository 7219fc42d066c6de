"""
json vs orjson vs msgspec on the per-event work of a stream: parse each upstream chunk's JSON (as the SSE
source gets it, a C{str}) and encode client events, for the recorded chunk shapes in bench/shapes.py.

Run under callgrind for instruction counts (subtract an --n 0 run for start-up):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/experiments/json_libs.py \\
        --lib orjson --op parse --shape azure --n 200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import shapes  # noqa: E402


def payloads(shape: str) -> list[str]:
    out = []
    for frame in shapes.stream(shape, 50, 0):
        for block in frame.split(b"\n\n"):
            if block.startswith(b"data: ") and block != b"data: [DONE]":
                out.append(block[6:].decode())
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=("json", "orjson", "msgspec"), required=True)
    p.add_argument("--op", choices=("parse", "encode"), required=True)
    p.add_argument("--shape", default="azure", choices=shapes.OPENAI_SHAPES + ("converse", "gemini"))
    p.add_argument("--n", type=int, default=200)
    a = p.parse_args()
    events = payloads(a.shape)
    values = [json.loads(e) for e in events]
    if a.lib == "json":
        loads = json.loads
        enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        dumps = lambda v: enc(v).encode()  # noqa: E731
    elif a.lib == "orjson":
        import orjson
        loads, dumps = orjson.loads, orjson.dumps
    else:
        import msgspec
        loads, dumps = msgspec.json.Decoder().decode, msgspec.json.Encoder().encode
    loads(events[0]), dumps(values[0])
    if a.op == "parse":
        for _ in range(a.n):
            for e in events:
                loads(e)
    else:
        for _ in range(a.n):
            for v in values:
                dumps(v)
    print(len(events), "events a stream")


if __name__ == "__main__":
    main()
