"""
The gateway's own text log (C{twistd -n --logfile}, no C{--logger}) once L{sapproxy.textlog} formats it: every
line as Twisted writes it, the request lines included.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from daemon_harness import running_stack

pytestmark = pytest.mark.integration

#: Twisted's classic line: RFC 3339 time to the second with the local offset, [namespace#level], the message.
CLASSIC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[[^\]\n]+\] ")


def test_int_request_lines_in_twisteds_text_format(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        gw = stack.gateway
        for text in ("one", "two {braces}", "three"):
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": [{"role": "user",
                                                                                       "content": text}]})
            assert reply.status == 200
        assert gw.post("/v1/chat/completions", {"model": "no-such-model", "messages": []}).status == 404
        deadline = time.monotonic() + 10
        while gw.log_text().count("POST /v1/chat/completions") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        log = gw.log_text()
    lines = [line for line in log.splitlines() if "POST /v1/chat/completions" in line]
    assert len(lines) == 4, log[-3000:]
    for line in lines:
        assert CLASSIC.match(line), line
        assert "[sapproxy.request#info] POST /v1/chat/completions " in line, line
    assert [line.split("] ", 1)[1].split()[2] for line in lines] == ["200", "200", "200", "404"]
    starts = [line for line in log.splitlines() if line and not line.startswith("\t")]
    assert all(CLASSIC.match(line) for line in starts), [line for line in starts if not CLASSIC.match(line)][:5]
