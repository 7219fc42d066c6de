"""
The Redis limiter against the real Redis at 127.0.0.1:6379: two limiters on two connections stand for two
gateway processes; a TCP stand-in in front of Redis, which a test stops, starts again or slows down, stands
for a Redis that goes away mid-run or answers late.  What is asserted is what a gateway would see: verdicts,
how long a check takes, the log lines, and what Redis itself reports (C{CLIENT LIST}, the keys).
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any, AsyncIterator, Iterator

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.protocols import portforward

from conftest import need
from sapproxy.ratelimit import Decision
from sapproxy.ratelimit.address import RedisAddress
from sapproxy.ratelimit.redis import RedisRateLimiter

REDIS = RedisAddress("127.0.0.1", 6379)
#: A database of the test Redis that these tests use besides 0 (db selection).
OTHER_DB = 7


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await sleep(0.02)


@pytest_twisted.async_yield_fixture
async def admin() -> AsyncIterator[Any]:
    """
    A Redis connection of the test's own (database 0), to look at what the limiters did.
    """
    need(redis_up(), "Redis at 127.0.0.1:6379 unavailable")
    conn = await txredisapi.Connection("127.0.0.1", 6379, reconnect=False, convertNumbers=False)
    yield conn
    await conn.disconnect()


@pytest_twisted.async_yield_fixture
async def prefix(admin: Any) -> AsyncIterator[str]:
    """
    A key prefix of this test's own; its keys (in database 0 and L{OTHER_DB}) are deleted afterwards.
    """
    p = f"sapproxy-test:{uuid.uuid4().hex}:"
    yield p
    other = await txredisapi.Connection("127.0.0.1", 6379, dbid=OTHER_DB, reconnect=False)
    for conn in (admin, other):
        keys = await conn.keys(p + "*")
        if keys:
            await conn.delete(keys)
    await other.disconnect()


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """
    The log events of the Redis limiter while the test runs.
    """
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "sapproxy.ratelimit.redis":
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def levels(events: list[dict[str, Any]]) -> list[str]:
    return [e["log_level"].name for e in events]


async def client_entry(admin: Any, limiter: RedisRateLimiter) -> dict[str, str] | None:
    """
    Redis's own C{CLIENT LIST} line for the limiter's connection, as a dict (C{None}: Redis does not list it).
    """
    assert limiter.local_address is not None
    addr = "%s:%d" % limiter.local_address
    listing = await admin.execute_command("CLIENT", "LIST")
    for line in listing.splitlines():
        fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
        if fields.get("addr") == addr:
            return fields
    return None


# --- sharing one limit -----------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_two_processes_share_one_limit(prefix: str, admin: Any) -> None:
    a = RedisRateLimiter(reactor, REDIS, prefix=prefix)
    b = RedisRateLimiter(reactor, REDIS, prefix=prefix)
    try:
        verdicts = []
        for i in range(6):
            verdicts.append(await (a if i % 2 else b).check("key1", 4, None))
        assert [v.allowed for v in verdicts] == [True] * 4 + [False] * 2
        assert verdicts[-1].reason == "rpm" and 58.0 <= verdicts[-1].retry_after <= 61.0
        assert a.local_address != b.local_address  # two connections, like two daemons
        # Another key is untouched; concurrent pipelined checks all get answers.
        many = [a.check("key2", 3, None) for _ in range(10)]
        got = [await d for d in many]
        assert sum(v.allowed for v in got) == 3
        assert sorted(await admin.keys(prefix + "*")) == [prefix + "{key1}:r", prefix + "{key2}:r"]
        assert 0 < await admin.ttl(prefix + "{key1}:r") <= 61
    finally:
        await a.disconnect()
        await b.disconnect()


@pytest_twisted.ensureDeferred
async def test_shared_tpm(prefix: str) -> None:
    a = RedisRateLimiter(reactor, REDIS, prefix=prefix)
    b = RedisRateLimiter(reactor, REDIS, prefix=prefix)
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
        assert (await a.check("k", None, None)) == Decision(True)  # unlimited: Redis is not asked
    finally:
        await a.disconnect()
        await b.disconnect()


# --- where and as whom -----------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_database_and_acl_user(prefix: str, admin: Any, logged: list[dict[str, Any]]) -> None:
    """
    The limiter selects the URL's database and logs in as the URL's ACL user, as Redis itself reports.
    """
    user, password = f"sapproxy-test-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    await admin.execute_command("ACL", "SETUSER", user, "on", ">" + password, f"~{prefix}*", "+@all")
    limiter = RedisRateLimiter(reactor, RedisAddress("127.0.0.1", 6379, OTHER_DB, user, password), prefix=prefix)
    other = await txredisapi.Connection("127.0.0.1", 6379, dbid=OTHER_DB, reconnect=False)
    try:
        assert limiter.database == OTHER_DB
        assert (await limiter.check("k", 1, None)).allowed
        assert not (await limiter.check("k", 1, None)).allowed
        entry = await client_entry(admin, limiter)
        assert entry is not None and entry["user"] == user and entry["db"] == str(OTHER_DB)
        assert await other.exists(prefix + "{k}:r") and not await admin.exists(prefix + "{k}:r")
        assert logged == []
    finally:
        await limiter.disconnect()
        await other.disconnect()
        await admin.execute_command("ACL", "DELUSER", user)


@pytest_twisted.ensureDeferred
async def test_refused_login_fails_open_with_one_error(prefix: str, logged: list[dict[str, Any]]) -> None:
    limiter = RedisRateLimiter(reactor, RedisAddress("127.0.0.1", 6379, 0, "nobody-" + uuid.uuid4().hex, "wrong"),
                               prefix=prefix, timeout=0.3)
    try:
        for _ in range(3):
            assert (await limiter.check("k", 1, 1)) == Decision(True)
        start = time.monotonic()
        assert (await limiter.check("k", 1, 1)).allowed
        assert time.monotonic() - start < 0.1  # known refused: not asked again
        assert levels(logged) == ["error"]
        assert "refused the rate limiter" in logged[0]["log_format"]
        assert "WRONGPASS" in logged[0]["error"]
        assert not limiter.connected
    finally:
        await limiter.disconnect()


# --- connections -----------------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_lazy_connection_and_disconnect(prefix: str, admin: Any, logged: list[dict[str, Any]]) -> None:
    limiter = RedisRateLimiter(reactor, REDIS, prefix=prefix)
    await sleep(0.2)
    assert not limiter.connected  # nothing is opened before the first check
    assert (await limiter.check("k", 2, None)).allowed
    assert limiter.connected and await client_entry(admin, limiter) is not None
    address = limiter.local_address
    await limiter.disconnect()
    assert not limiter.connected and limiter.local_address is None
    assert levels(logged) == ["info"] and "closed the connection" in logged[0]["log_format"]
    listing = await admin.execute_command("CLIENT", "LIST")
    assert "addr=%s:%d " % address not in listing  # type: ignore[str-format]
    # Used again after a disconnect, it connects again; the window lives in Redis.
    assert (await limiter.check("k", 2, None)).allowed
    assert not (await limiter.check("k", 2, None)).allowed
    await limiter.disconnect()


@pytest_twisted.ensureDeferred
async def test_reconnects_after_client_kill(prefix: str, admin: Any, logged: list[dict[str, Any]]) -> None:
    """
    A connection that Redis closes (CLIENT KILL, a restart, an idle timeout) is reopened before the next check
    needs it, and nobody notices: no outage is reported.
    """
    limiter = RedisRateLimiter(reactor, REDIS, prefix=prefix)
    try:
        assert (await limiter.check("k", 2, None)).allowed
        first = limiter.local_address
        assert first is not None
        assert await admin.execute_command("CLIENT", "KILL", "ADDR", "%s:%d" % first) == 1  # one client killed
        await until(lambda: limiter.local_address != first)
        assert (await limiter.check("k", 2, None)).allowed  # a new connection, the same window
        assert not (await limiter.check("k", 2, None)).allowed
        assert limiter.local_address not in (None, first)
        assert logged == []
    finally:
        await limiter.disconnect()


@pytest_twisted.ensureDeferred
async def test_script_loaded_again_after_flush(prefix: str, admin: Any) -> None:
    """
    EVALSHA's NOSCRIPT (after SCRIPT FLUSH or a Redis restart behind a proxy) falls back to EVAL.
    """
    limiter = RedisRateLimiter(reactor, REDIS, prefix=prefix)
    try:
        assert (await limiter.check("a", 5, None)).allowed
        assert (await limiter.check("a", 5, None)).allowed  # now by EVALSHA
        await admin.execute_command("SCRIPT", "FLUSH")
        assert (await limiter.check("k", 1, None)).allowed
        assert not (await limiter.check("k", 1, None)).allowed
    finally:
        await limiter.disconnect()


# --- outages ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_connection_refused_fails_open(logged: list[dict[str, Any]]) -> None:
    limiter = RedisRateLimiter(reactor, RedisAddress("127.0.0.1", free_port()), prefix="x:", timeout=0.3)
    try:
        start = time.monotonic()
        assert (await limiter.check("k", 1, 1)) == Decision(True)
        assert time.monotonic() - start < 1.0  # at most the timeout
        start = time.monotonic()
        for _ in range(5):
            assert (await limiter.check("k", 1, 1)) == Decision(True)
        assert time.monotonic() - start < 0.1  # a known outage costs nothing more
        limiter.add_tokens("k", 10)  # must not raise either
        assert levels(logged) == ["warn"]  # one warning for the outage
        assert "allowing requests without limits" in logged[0]["log_format"]
        assert logged[0]["error"] == "no connection within 0.3 seconds"
    finally:
        await limiter.disconnect()


class _ToClient(portforward.ProxyClient):
    noisy = False

    def dataReceived(self, data: bytes) -> None:
        assert self.peer is not None
        delay = self.peer.factory.delay  # type: ignore[attr-defined]
        if delay:
            reactor.callLater(delay, self._late, data)  # type: ignore[attr-defined]
        else:
            super().dataReceived(data)

    def _late(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)


class _ToClientFactory(portforward.ProxyClientFactory):
    protocol = _ToClient
    noisy = False


class _FromClient(portforward.ProxyServer):
    noisy = False
    clientProtocolFactory = _ToClientFactory

    def connectionMade(self) -> None:
        self.factory.open.add(self)  # type: ignore[attr-defined]
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.open.discard(self)  # type: ignore[attr-defined]
        super().connectionLost(reason)


class RedisStandIn(portforward.ProxyFactory):
    """
    A TCP stand-in for the test Redis: L{stop} is Redis going away (connections cut, connections refused),
    L{start} it coming back on the same port, L{delay} holds every reply for that many seconds.
    """

    protocol = _FromClient
    noisy = False

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 6379)
        self.delay = 0.0
        self.open: set[_FromClient] = set()
        self.listen_port = 0  # (self.port is Redis's, the port forwarded to)
        self._listening: Any = None

    def start(self) -> None:
        self._listening = reactor.listenTCP(self.listen_port, self, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.listen_port = self._listening.getHost().port

    async def stop(self) -> None:
        await self._listening.stopListening()
        for conn in list(self.open):
            conn.transport.abortConnection()
        await until(lambda: not self.open)


@pytest.fixture
def stand_in() -> Iterator[RedisStandIn]:
    need(redis_up(), "Redis at 127.0.0.1:6379 unavailable")
    proxy = RedisStandIn()
    proxy.start()
    yield proxy
    if proxy._listening.connected:
        proxy._listening.stopListening()
    for conn in list(proxy.open):
        conn.transport.abortConnection()


@pytest_twisted.ensureDeferred
async def test_redis_stopped_mid_run(prefix: str, stand_in: RedisStandIn, logged: list[dict[str, Any]]) -> None:
    """
    Redis goes away: requests are allowed (the first waits at most the timeout, the rest not at all), one
    warning; it comes back: the limiter reconnects by itself, says so once, and the shared window held.
    """
    limiter = RedisRateLimiter(reactor, RedisAddress("127.0.0.1", stand_in.listen_port), prefix=prefix, timeout=0.3,
                               retry_delay=0.5)
    try:
        assert (await limiter.check("k", 2, None)).allowed
        assert logged == []
        await stand_in.stop()
        start = time.monotonic()
        assert (await limiter.check("k", 2, None)).allowed
        assert time.monotonic() - start < 1.0
        start = time.monotonic()
        for _ in range(5):
            assert (await limiter.check("k", 2, None)).allowed  # over the limit, but Redis is away: fail open
        assert time.monotonic() - start < 0.1
        assert levels(logged) == ["warn"]
        assert logged[0]["error"] in ("no connection within 0.3 seconds", "Lost connection")
        stand_in.start()
        await until(lambda: limiter.connected)
        await sleep(0.5)  # past retry_delay since the timeout
        assert (await limiter.check("k", 2, None)).allowed  # the second of two: the window survived in Redis
        refused = await limiter.check("k", 2, None)
        assert refused.reason == "rpm"
        assert levels(logged) == ["warn", "info"] and "answers again" in logged[1]["log_format"]
    finally:
        await limiter.disconnect()


@pytest_twisted.ensureDeferred
async def test_slow_redis_times_out_open(prefix: str, stand_in: RedisStandIn,
                                         logged: list[dict[str, Any]]) -> None:
    """
    A Redis that answers later than the timeout costs each request at most the timeout once, then nothing for
    C{retry_delay}; the late connection is dropped, and limits hold again once Redis is quick.
    """
    limiter = RedisRateLimiter(reactor, RedisAddress("127.0.0.1", stand_in.listen_port), prefix=prefix, timeout=0.2,
                               retry_delay=0.6)
    try:
        assert (await limiter.check("warm", 1, None)).allowed
        assert not (await limiter.check("warm", 1, None)).allowed
        slow_connection = limiter.local_address
        stand_in.delay = 1.0
        start = time.monotonic()
        assert (await limiter.check("k", 1, None)).allowed
        assert 0.15 < time.monotonic() - start < 0.8  # the timeout, not the reply's delay
        start = time.monotonic()
        for _ in range(3):
            assert (await limiter.check("k", 1, None)).allowed
        assert time.monotonic() - start < 0.1  # not asked during retry_delay
        assert levels(logged) == ["warn"] and logged[0]["error"] == "no answer within 0.2 seconds"
        stand_in.delay = 0.0
        await sleep(0.7)
        await until(lambda: limiter.connected)
        assert limiter.local_address != slow_connection  # the late one was dropped
        assert (await limiter.check("fresh", 1, None)).allowed
        assert not (await limiter.check("fresh", 1, None)).allowed
        assert levels(logged) == ["warn", "info"]
    finally:
        await limiter.disconnect()


@pytest_twisted.ensureDeferred
async def test_silent_redis_times_out_open() -> None:
    """
    A Redis that accepts but never answers costs at most the timeout, then the request is allowed.
    """
    port = reactor.listenTCP(0, ServerFactory.forProtocol(Protocol), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        limiter = RedisRateLimiter(reactor, RedisAddress("127.0.0.1", port.getHost().port), timeout=0.2)
        start = time.monotonic()
        assert (await limiter.check("k", 1, None)).allowed
        assert time.monotonic() - start < 1.0
        # Then it stops asking for retry_delay: later requests are not each held for the timeout.
        start = time.monotonic()
        assert (await limiter.check("k", 1, None)).allowed
        assert time.monotonic() - start < 0.1
        await limiter.disconnect()
    finally:
        stopped: Deferred[None] | None = port.stopListening()
        if stopped is not None:
            await stopped
