"""
How long the reactor thread spends on one big chat body (issue #15, item 4), without sockets: the gateway's own
work between the last byte read and the first byte written upstream.

    .venv/bin/python bench/big_bodies.py              # 22 MiB, best of 7
    .venv/bin/python bench/big_bodies.py --mib 28 --repeats 3
    .venv/bin/python bench/big_bodies.py --shape code       # an agent's history: tool calls, code, JSON

For each step it prints the best CPU time (of this process, so that other processes taking the cores on a
shared machine do not count) in milliseconds: C{parse_body} (the edge: parse, depth check, surrogate
repair), the gateway's way with a big body (C{parse_in_pieces}: its longest stretch, then planning and encoding
after it, each one stretch of the reactor thread between two others' turns), then, per wire format, planning the exchange for a body already parsed (pass-through or
client -> IR -> wire) including encoding the upstream body.  The last lines compare the JSON libraries on the
same body, so a change of parser or encoder can be judged apart from the gateway's code around it.

The body is a long conversation (400 messages of 55,000 characters, ASCII with some German and Chinese words,
quotes and newlines): what a coding agent's context looks like, and the shape the red team sent.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sapproxy.dispatch.plan import plan  # noqa: E402
from sapproxy.edge import Outline, parse_body, parse_in_pieces  # noqa: E402
from sapproxy.registry import WIRE_FORMATS  # noqa: E402
from sapproxy.translate.client.openai_chat import CLIENT_API  # noqa: E402
from sapproxy.translate.jsontext import json_text  # noqa: E402
from sapproxy.translate.wire import WireTarget  # noqa: E402

WORDS = ["gateway", "stream", "token", "def", "return", "upstream", "the", "of", "Bedrock", "{", "}", "42",
         "über", "数据", "deployment", "\n", "client", "retry", '"quoted"']


def conversation(mib: float, seed: int = 1, model: str = "m") -> bytes:
    """
    A chat body of about C{mib} MiB: 400 alternating messages of plain text (tests/attacks sends the same
    bodies to the daemon).
    """
    rng = random.Random(seed)
    per_message = int(mib * (1 << 20) / 400)
    messages = []
    for i in range(400):
        out: list[str] = []
        size = 0
        while size < per_message:
            word = rng.choice(WORDS)
            out.append(word)
            size += len(word.encode()) + 1
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": " ".join(out)})
    return json.dumps({"model": model, "max_tokens": 5, "messages": messages}, ensure_ascii=False).encode()


def code_conversation(mib: float) -> bytes:
    """A conversation of tool calls and results: code and JSON text, dense in commas, colons and escapes."""
    rng = random.Random(3)
    lines = ['def f(a, b):', '    return {"key": a, "value": [b, 2, 3]}', 'x = f(1, "y: z")', '{"a": 1, "b": [1, 2]}',
             'if x: print(x, end="")', '\tfor i in range(10): pass', 'über = "数据"']
    messages = []
    per_message = int(mib * (1 << 20) / 400)
    for i in range(400):
        text = "\n".join(rng.choice(lines) for _ in range(per_message // 30))
        if i % 2:
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "run", "arguments": json.dumps({"code": text})}}]})
        else:
            messages.append({"role": "tool", "tool_call_id": f"call_{i - 1}", "content": text})
    messages[0] = {"role": "user", "content": messages[0]["content"]}
    return json.dumps({"model": "m", "messages": messages}).encode()


def best(step: Callable[[], Any], repeats: int, setup: Callable[[], Any] = lambda: None) -> float:
    """The least CPU time of C{repeats} runs of C{step(setup())}, in ms; C{setup} is not timed."""
    times = []
    for _ in range(repeats):
        prepared = setup()
        started = time.process_time()
        step() if prepared is None else step(prepared)
        times.append(time.process_time() - started)
        del prepared
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=float, default=22)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shape", choices=("prose", "code"), default="prose",
                        help="prose: plain messages; code: tool calls and results of code and JSON text")
    args = parser.parse_args()
    raw = conversation(args.mib) if args.shape == "prose" else code_conversation(args.mib)
    print(f"body: {len(raw) / (1 << 20):.1f} MiB")
    print(f"{'parse_body (edge)':<40}{best(lambda: parse_body(raw), args.repeats):8.1f} ms")
    # What the gateway does with a big body: parsed in pieces, a reactor round between them (the outline is
    # gathered as the body arrives, so it is not timed); the longest piece is the longest reactor stretch.
    outline = Outline()
    outline.feed(raw)
    longest, total, pieces = [], [], 0
    for _ in range(args.repeats):
        steps, stretches = parse_in_pieces(raw, outline), []
        while True:
            started = time.process_time()
            try:
                next(steps)
            except StopIteration as done:
                stretches.append(time.process_time() - started)
                body = done.value
                break
            stretches.append(time.process_time() - started)
        longest.append(max(stretches))
        total.append(sum(stretches))
        pieces = len(stretches)
    print(f"{'parse_in_pieces: longest stretch':<40}{min(longest) * 1000:8.1f} ms  ({pieces} stretches, "
          f"{min(total) * 1000:.0f} ms in all)")
    del body

    def pieces() -> Any:
        steps = parse_in_pieces(raw, outline)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    for wire_name, model in (("openai_chat", "gpt-4.1"), ("bedrock_invoke", "anthropic.claude-sonnet-4-5"),
                             ("gemini", "gemini-2.5-pro")):
        wire = WIRE_FORMATS[wire_name]
        ms = best(lambda b: plan(CLIENT_API, CLIENT_API.call(b, model, {"always_include_usage": False}), wire,
                                 WireTarget(model)).request, args.repeats, pieces)
        print(f"{'then plan + encode, ' + wire_name:<40}{ms:8.1f} ms  (one stretch)")
    print(f"{'plan + encode only, openai_chat':<40}"
          f"{best(lambda b: plan(CLIENT_API, CLIENT_API.call(b, 'gpt-4.1', {}), WIRE_FORMATS['openai_chat'], WireTarget('gpt-4.1')).request, args.repeats, lambda: parse_body(raw)):8.1f} ms")
    for wire_name, model, note in (("openai_chat", "gpt-4.1", "pass-through"),
                                   ("bedrock_invoke", "anthropic.claude-sonnet-4-5", "translated"),
                                   ("converse", "amazon.nova-pro", "translated"),
                                   ("gemini", "gemini-2.5-pro", "translated")):
        wire = WIRE_FORMATS[wire_name]

        def step() -> None:
            call = CLIENT_API.call(parse_body(raw), model, {"always_include_usage": False})
            plan(CLIENT_API, call, wire, WireTarget(model)).request

        body_ms = best(step, args.repeats)
        print(f"{'parse + plan + encode, ' + wire_name:<40}{body_ms:8.1f} ms  ({note})")
    # Encoders are timed on a freshly parsed body each time: orjson keeps each string's UTF-8 form once it has
    # made it, so encoding the same objects again would look 5x faster than a request's one encoding.
    fresh = lambda: json.loads(raw)  # noqa: E731
    print(f"{'json.loads (stdlib)':<40}{best(lambda: json.loads(raw), args.repeats):8.1f} ms")
    print(f"{'json.dumps compact (stdlib)':<40}"
          f"{best(lambda v: json.dumps(v, ensure_ascii=False, separators=(',', ':')).encode(), args.repeats, fresh):8.1f} ms")
    print(f"{'json_text (the gateway encoder)':<40}{best(json_text, args.repeats, fresh):8.1f} ms")
    try:
        import orjson
    except ImportError:
        return
    print(f"{'orjson.loads':<40}{best(lambda: orjson.loads(raw), args.repeats):8.1f} ms")
    print(f"{'orjson.dumps':<40}{best(orjson.dumps, args.repeats, fresh):8.1f} ms")


if __name__ == "__main__":
    main()
