"""
Summarise a py-spy ``--format raw`` (collapsed stacks) profile: where the busy time goes, by category, by
function (self time) and by function (inclusive time).

    python bench/profile_summary.py pyspy.txt [--title T] [-o out.txt]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")

# (category, substring of "function (file)") checked in order against each frame from the leaf upwards;
# the first frame that matches any rule names the sample's category.
CATEGORIES = [
    ("json encode/decode", ("json/encoder.py", "json/decoder.py", "json/__init__.py")),
    ("logging (twisted.logger / access log)", ("twisted/logger/", "twisted/python/log.py", "twisted/web/http.py:log",
                                              "_logFormatter", "combinedLogFormatter", "proxiedLogFormatter")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("usage accounting / SQLite", ("sapproxy/accounting.py", "sapproxy/usage/", "sqlite3")),
    ("sapproxy translate (SSE/IR/eventstream)", ("sapproxy/translate/",)),
    ("sapproxy relay", ("sapproxy/dispatch/relay.py",)),
    ("sapproxy gateway/routes/auth", ("sapproxy/",)),
    ("botocore eventstream", ("botocore/",)),
    ("attrs/cattrs", ("attr/", "cattrs/")),
    ("treq", ("treq/",)),
    ("twisted.web client (_newclient, Agent, pool)", ("twisted/web/_newclient.py", "twisted/web/client.py")),
    ("twisted.web server (http.py, server.py)", ("twisted/web/http.py", "twisted/web/server.py",
                                                 "twisted/web/_http2.py", "twisted/web/http_headers.py")),
    ("klein", ("klein/", "werkzeug/")),
    ("Deferreds / coroutines", ("twisted/internet/defer.py",)),
    ("reactor / socket I/O", ("twisted/internet/", "twisted/python/")),
]


def parse(path: str) -> list[tuple[list[str], int]]:
    out = []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        try:
            count = int(n)
        except ValueError:
            continue
        out.append((stack.split(";"), count))
    return out


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, file = m.group(1), m.group(2)
    file = re.sub(r".*site-packages/", "", file)
    file = re.sub(r".*/lib/python3\.\d+/", "", file)
    return f"{func} ({file})"


def is_idle(stack: list[str]) -> bool:
    leaf = stack[-1]
    return any(s in leaf for s in ("doPoll", "Condition.wait", "Queue.get", "select.epoll", "_worker"))


def categorise(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--title", default="")
    ap.add_argument("-o", "--output")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--seconds", type=float, default=0, help="recording length, to estimate the main thread's load")
    ap.add_argument("--rate", type=float, default=200)
    a = ap.parse_args()
    samples = parse(a.raw)
    total = sum(n for _, n in samples)
    busy = [(s, n) for s, n in samples if not is_idle(s)]
    nbusy = sum(n for _, n in busy)
    selft: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    for stack, n in busy:
        frames = [short(f) for f in stack]
        selft[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        cats[categorise(stack)] += n
    lines = []
    if a.title:
        lines.append(a.title)
    lines.append(f"samples: {total} total, {nbusy} busy ({100 * nbusy / max(total, 1):.0f}%); percentages are of "
                 f"busy samples")
    if a.seconds:
        lines.append(f"busy samples / (seconds x rate) = {100 * nbusy / (a.seconds * a.rate):.0f}% of one core "
                     f"(the reactor thread; idle threadpool threads are not counted as busy)")
    lines.append("")
    lines.append("== by category (innermost matching frame) ==")
    for name, n in cats.most_common():
        lines.append(f"{100 * n / max(nbusy, 1):6.1f}%  {name}")
    lines.append("")
    lines.append(f"== top {a.top} functions by self time ==")
    for f, n in selft.most_common(a.top):
        lines.append(f"{100 * n / max(nbusy, 1):6.1f}%  {f}")
    lines.append("")
    lines.append(f"== top {a.top} functions by inclusive time ==")
    for f, n in incl.most_common(a.top + 15):
        lines.append(f"{100 * n / max(nbusy, 1):6.1f}%  {f}")
    text = "\n".join(lines) + "\n"
    if a.output:
        open(a.output, "w").write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
