"""
Rate limits: the in-process limiter on a L{task.Clock}, and the Redis limiter against the real Redis at
127.0.0.1:6379 (two limiters on two connections stand for two gateway processes).
"""

from __future__ import annotations

import socket
import uuid
from typing import Any, Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from conftest import need
from sapproxy.ratelimit import (
    Decision,
    InProcessRateLimiter,
    RedisRateLimiter,
    encode_command,
    make_rate_limiter,
    parse_reply,
)


def result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


# --- in process ------------------------------------------------------------------------------------------------


def test_rpm_window_slides() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    for _ in range(3):
        assert result(limiter.check("k", 3, None)).allowed
        clock.advance(10)
    # Requests at t=0, 10, 20; now t=30.
    refused = result(limiter.check("k", 3, None))
    assert refused == Decision(False, 30.0, "rpm")  # the t=0 request leaves the window at t=60
    assert result(limiter.check("other", 3, None)).allowed  # per key
    clock.advance(29.9)
    assert not result(limiter.check("k", 3, None)).allowed
    clock.advance(0.1)  # t=60: the first request is out
    assert result(limiter.check("k", 3, None)).allowed
    d = result(limiter.check("k", 3, None))
    assert d.reason == "rpm" and d.retry_after == pytest.approx(10.0)  # next out: t=10's at t=70


def test_refused_requests_are_not_counted() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", 1, None)).allowed
    for _ in range(10):
        assert not result(limiter.check("k", 1, None)).allowed
    clock.advance(60)
    assert result(limiter.check("k", 1, None)).allowed


def test_tpm() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", None, 1000)).allowed
    limiter.add_tokens("k", 600)
    clock.advance(20)
    assert result(limiter.check("k", None, 1000)).allowed  # 600 < 1000
    limiter.add_tokens("k", 500)
    clock.advance(5)  # t=25; 1100 spent in the window
    refused = result(limiter.check("k", None, 1000))
    assert refused.reason == "tpm" and refused.retry_after == pytest.approx(35.0)  # the 600 expire at t=60
    clock.advance(35)
    assert result(limiter.check("k", None, 1000)).allowed  # 500 left
    assert result(limiter.check("k", None, None)).allowed  # unlimited key


def test_rpm_and_tpm_together() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", 10, 100)).allowed
    limiter.add_tokens("k", 100)
    assert result(limiter.check("k", 10, 100)).reason == "tpm"


def test_make_rate_limiter() -> None:
    assert isinstance(make_rate_limiter(None, Clock()), InProcessRateLimiter)
    assert isinstance(make_rate_limiter("", Clock()), InProcessRateLimiter)
    limiter = make_rate_limiter("redis://127.0.0.1:6380/3", reactor)
    assert isinstance(limiter, RedisRateLimiter) and limiter._db == 3
    with pytest.raises(ValueError):
        make_rate_limiter("http://x", reactor)


# --- RESP ------------------------------------------------------------------------------------------------------


def test_resp_codec() -> None:
    assert encode_command("SET", "k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    value, pos = parse_reply(b"*3\r\n:1\r\n$3\r\ntpm\r\n$-1\r\n+OK\r\n")
    assert value == [1, b"tpm", None] and pos == 22
    assert parse_reply(b"+OK\r\n", pos) if False else True
    err, _ = parse_reply(b"-NOSCRIPT No matching script\r\n")
    assert str(err).startswith("NOSCRIPT")
    from sapproxy.ratelimit import _Incomplete

    for cut in range(1, 20):
        with pytest.raises(_Incomplete):
            parse_reply(b"*2\r\n$5\r\nhello\r\n:42\r\n"[:cut])


# --- Redis -----------------------------------------------------------------------------------------------------


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def prefix() -> Iterator[str]:
    """
    A key prefix of this test's own; its keys are deleted afterwards.
    """
    need(redis_up(), "Redis at 127.0.0.1:6379 unavailable")
    p = f"sapproxy-test:{uuid.uuid4().hex}:"
    yield p
    with socket.create_connection(("127.0.0.1", 6379), timeout=2) as s:
        s.sendall(encode_command("KEYS", p + "*"))
        data = b""
        while True:
            data += s.recv(65536)
            try:
                keys, _ = parse_reply(data)
                break
            except Exception:
                continue
        if keys:
            s.sendall(encode_command("DEL", *keys))
            s.recv(64)


@pytest_twisted.ensureDeferred
async def test_two_processes_share_one_limit(prefix: str) -> None:
    a = RedisRateLimiter(reactor, "127.0.0.1", 6379, prefix=prefix)
    b = RedisRateLimiter(reactor, "127.0.0.1", 6379, prefix=prefix)
    try:
        verdicts = []
        for i in range(6):
            verdicts.append(await (a if i % 2 else b).check("key1", 4, None))
        assert [v.allowed for v in verdicts] == [True] * 4 + [False] * 2
        assert verdicts[-1].reason == "rpm" and 58.0 <= verdicts[-1].retry_after <= 61.0
        assert a._proto is not b._proto  # two connections, like two daemons
        # Another key is untouched; concurrent pipelined checks all get answers.
        many = [a.check("key2", 3, None) for _ in range(10)]
        got = [await d for d in many]
        assert sum(v.allowed for v in got) == 3
    finally:
        await a.disconnect()
        await b.disconnect()


@pytest_twisted.ensureDeferred
async def test_shared_tpm(prefix: str) -> None:
    a = RedisRateLimiter(reactor, "127.0.0.1", 6379, prefix=prefix)
    b = RedisRateLimiter(reactor, "127.0.0.1", 6379, prefix=prefix)
    try:
        assert (await a.check("k", None, 1000)).allowed
        a.add_tokens("k", 700)
        b.add_tokens("k", 300)
        # add_tokens does not wait; a check on each connection comes after its own write.
        await a.check("k", None, 10**9)
        await b.check("k", None, 10**9)
        refused = await a.check("k", None, 1000)
        assert refused.reason == "tpm" and 58.0 <= refused.retry_after <= 61.0
        assert not (await b.check("k", 100, 1000)).allowed
    finally:
        await a.disconnect()
        await b.disconnect()


@pytest_twisted.ensureDeferred
async def test_reconnects_after_loss(prefix: str) -> None:
    a = RedisRateLimiter(reactor, "127.0.0.1", 6379, prefix=prefix)
    try:
        assert (await a.check("k", 2, None)).allowed
        assert a._proto is not None and a._proto.transport is not None
        a._proto.transport.loseConnection()
        await deferLater(reactor, 0.05, lambda: None)
        assert (await a.check("k", 2, None)).allowed  # new connection, same window
        assert not (await a.check("k", 2, None)).allowed
    finally:
        await a.disconnect()


@pytest_twisted.ensureDeferred
async def test_script_loaded_again_after_flush(prefix: str) -> None:
    """
    EVALSHA's NOSCRIPT (after SCRIPT FLUSH or a Redis restart) falls back to EVAL.
    """
    a = RedisRateLimiter(reactor, "127.0.0.1", 6379, prefix=prefix)
    try:
        proto = await a._connection()
        await proto.execute("SCRIPT", "FLUSH")
        assert (await a.check("k", 1, None)).allowed
        assert not (await a.check("k", 1, None)).allowed
    finally:
        await a.disconnect()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_redis_down_fails_open() -> None:
    limiter = RedisRateLimiter(reactor, "127.0.0.1", free_port(), prefix="x:", retry_delay=60)
    for _ in range(3):
        assert (await limiter.check("k", 1, 1)) == Decision(True, 0.0, "")
    limiter.add_tokens("k", 10)  # must not raise either


@pytest_twisted.ensureDeferred
async def test_silent_redis_times_out_open() -> None:
    """
    A Redis that accepts but never answers costs at most the timeout, then the request is allowed.
    """
    from twisted.internet.protocol import Protocol, ServerFactory

    port = reactor.listenTCP(0, ServerFactory.forProtocol(Protocol), interface="127.0.0.1")  # type: ignore[arg-type]
    try:
        limiter = RedisRateLimiter(reactor, "127.0.0.1", port.getHost().port, timeout=0.2)  # type: ignore[attr-defined]
        start = reactor.seconds()
        assert (await limiter.check("k", 1, None)).allowed
        assert reactor.seconds() - start < 1.0
        # Then it stops trying for retry_delay: later requests are not each held for the timeout.
        start = reactor.seconds()
        assert (await limiter.check("k", 1, None)).allowed
        assert reactor.seconds() - start < 0.1
        await deferLater(reactor, 0.7, lambda: None)  # let the connection attempt time out and be dropped
        await limiter.disconnect()
    finally:
        stopped = port.stopListening()
        if stopped is not None:
            await stopped
