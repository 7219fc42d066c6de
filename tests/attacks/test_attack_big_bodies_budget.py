"""
The gateway-wide budget of big request bodies (issue #15, item 4): four 28 MiB bodies took RSS from 144 to
531 MiB and nothing limited how many were held at once.  Now a body of 1 MiB or more takes its size from
C{body_budget_bytes} when it starts to arrive and gives it back when its request ends; past the budget a new
one gets a 503 with Retry-After (a 413 if it alone is larger than the budget) in the client's dialect, before
its body is read.  The site is driven in memory here; test_attack_big_bodies_daemon.py does it to the daemon.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.python.failure import Failure
from twisted.internet.error import ConnectionLost

from test_attack_connections import Conn, site

MIB = 1 << 20


def head(length: int | None, path: bytes = b"/v1/chat/completions") -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n"


def error(c: Conn) -> tuple[bytes, dict[str, Any]]:
    head_, body = c.out.split(b"\r\n\r\n", 1)
    return head_, json.loads(body)


def test_big_bodies_past_the_budget_get_a_503_with_retry_after_before_they_are_read() -> None:
    s, reactor = site(max_body_bytes=64 * MIB, body_budget_bytes=5 * MIB)
    first, second = Conn(s, reactor), Conn(s, reactor)
    first.send(head(2 * MIB))
    second.send(head(2 * MIB))
    assert s.body_budget.held == 4 * MIB and not first.out and not second.out
    third = Conn(s, reactor)
    third.send(head(2 * MIB, b"/v1/messages"))
    assert third.closed and third.status() == 503
    head_, body = error(third)
    assert b"Retry-After: 2\r\n" in head_
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"  # Anthropic's dialect
    assert s.body_budget.held == 4 * MIB and s.body_budget.refused == 1
    # A small body never touches the budget.
    small = Conn(s, reactor)
    small.send(head(1000) + b"a" * 1000)
    assert small.status() == 200 and s.body_budget.held == 4 * MIB
    # The first ends: its bytes come back, and the next big body is taken.
    first.send(b"a" * (2 * MIB))
    assert first.status() == 200 and s.body_budget.held == 2 * MIB
    fourth = Conn(s, reactor)
    fourth.send(head(3 * MIB))
    assert not fourth.out and s.body_budget.held == 5 * MIB


def test_a_body_larger_than_the_whole_budget_gets_a_413_naming_it() -> None:
    s, reactor = site(max_body_bytes=64 * MIB, body_budget_bytes=5 * MIB)
    c = Conn(s, reactor)
    c.send(head(6 * MIB))
    assert c.closed and c.status() == 413
    assert "budget for big bodies of 5242880 bytes" in error(c)[1]["error"]["message"]
    assert s.body_budget.held == 0 and s.body_budget.refused_alone == 1


def test_a_chunked_upload_takes_from_the_budget_as_it_grows() -> None:
    s, reactor = site(max_body_bytes=64 * MIB, body_budget_bytes=3 * MIB)
    holder = Conn(s, reactor)
    holder.send(head(2 * MIB))
    c = Conn(s, reactor)
    c.send(head(None))
    chunk = b"a" * (MIB // 2)
    c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    assert s.body_budget.held == 2 * MIB  # small so far
    c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    assert s.body_budget.held == 3 * MIB and not c.out  # 1 MiB: big now
    c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    assert c.closed and c.status() == 503
    assert s.body_budget.held == 2 * MIB  # what it took is back


def test_a_client_gone_mid_upload_gives_its_bytes_back() -> None:
    s, reactor = site(max_body_bytes=64 * MIB, body_budget_bytes=5 * MIB)
    c = Conn(s, reactor)
    c.send(head(4 * MIB) + b"a" * MIB)
    assert s.body_budget.held == 4 * MIB
    c.protocol.connectionLost(Failure(ConnectionLost()))
    assert s.body_budget.held == 0
