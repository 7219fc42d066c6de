"""
The per-stream cost of the conversion alone (no sockets, no reactor): one upstream stream of a recorded shape
(bench/shapes.py) through sapproxy's pipeline for the case, against the bare floor's per-event work (split
the SSE, ``json.loads`` + ``dumps`` each event) on the same bytes.

The bytes are fed as the relay gets them: one upstream read per event (``--reads event``, a slow upstream)
or the whole body in one read (``--reads one``, a fast upstream packing every event into one socket read).

Wall-clock figures on a shared machine are noise; run it under callgrind for instruction counts, A/B on the
same workload:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/pipeline_cost.py \\
        --case gpt_passthrough --shape azure --streams 200 --target sapproxy
    (the "Collected" line is the instruction count; subtract a --streams 0 run for the start-up)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import shapes  # noqa: E402

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def bare_stream(reads: list[bytes]) -> int:
    """bench/bare_passthrough.py's SSERelay.dataReceived, minus the socket write."""
    buf = b""
    n = 0
    for data in reads:
        buf = buf + data
        parts = buf.split(b"\n\n")
        buf = parts.pop()
        out = []
        for event in parts:
            if not event.startswith(b"data: "):
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                out.append(b"data: [DONE]\n\n")
                continue
            out.append(b"data: " + _dumps(json.loads(payload)).encode() + b"\n\n")
        n += len(out)
    return n


def sapproxy_pipeline(case: str) -> Callable[[], Any]:
    """A maker of sapproxy's pipeline for C{case}, planned as the dispatcher plans it (sapproxy.dispatch.plan)."""
    from sapproxy.dispatch.plan import plan
    from sapproxy.registry import WIRE_FORMATS
    from sapproxy.translate.client import anthropic_messages, openai_chat
    from sapproxy.translate.wire import WireTarget

    client, wire, model, ctype = {
        "gpt_passthrough": (openai_chat, "openai_chat", "gpt-4.1", "text/event-stream"),
        "gpt_to_anthropic": (anthropic_messages, "openai_chat", "gpt-4.1", "text/event-stream"),
        "claude_to_openai": (openai_chat, "bedrock_invoke", "anthropic--claude-4.5-sonnet",
                             "application/vnd.amazon.eventstream"),
        "converse_to_openai": (openai_chat, "converse", "anthropic--claude-4-sonnet", "text/event-stream"),
        "bedrock_converse": (openai_chat, "converse", "amazon.nova-pro-v1:0", "application/vnd.amazon.eventstream"),
        "gemini_to_openai": (openai_chat, "gemini", "gemini-2.5-pro", "text/event-stream"),
    }[case]
    api = client.CLIENT_API
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 64}
    exchange = plan(api, api.call(body, model, {}), WIRE_FORMATS[wire], WireTarget(model))
    return lambda: exchange.pipeline(ctype)


def sapproxy_stream(make: Callable[[], Any], reads: list[bytes]) -> int:
    pipeline = make()
    n = 0
    for data in reads:
        n += len(pipeline.feed(data))
    n += len(pipeline.finish())
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="gpt_passthrough")
    p.add_argument("--shape", default="azure", choices=shapes.SHAPES)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--event-bytes", type=int, default=0)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--reads", choices=("event", "one"), default="event")
    p.add_argument("--target", choices=("sapproxy", "bare"), default="sapproxy")
    a = p.parse_args(argv)
    frames = shapes.stream(a.shape, a.events, a.event_bytes)
    reads = frames if a.reads == "event" else [b"".join(frames)]
    if a.target == "bare":
        run: Callable[[], int] = lambda: bare_stream(reads)  # noqa: E731
    else:
        make = sapproxy_pipeline(a.case)
        run = lambda: sapproxy_stream(make, reads)  # noqa: E731
    run()  # warm: imports, caches
    t0 = time.perf_counter()
    out = 0
    for _ in range(a.streams):
        out = run()
    dt = time.perf_counter() - t0
    print(json.dumps({"target": a.target, "case": a.case, "shape": a.shape, "reads": a.reads, "streams": a.streams,
                      "client_writes_per_stream": out,
                      "us_per_stream": round(1e6 * dt / max(a.streams, 1), 1)}))


if __name__ == "__main__":
    main()
