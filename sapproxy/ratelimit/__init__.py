"""
Per-key rate limits: requests per minute (rpm) and tokens per minute (tpm) over a sliding 60-second window.

Two implementations of one L{RateLimiter} interface:

  - L{InProcessRateLimiter}: exact sliding window in memory, on an injected clock; right for one gateway
    process.
  - L{RedisRateLimiter}: the window lives in Redis, updated atomically by a Lua script, so any number of gateway
    replicas enforce one shared limit.  It speaks RESP2 itself over a Twisted TCP connection (pipelined,
    reconnecting) rather than running the blocking redis-py in threads.

Tokens are only known after a response, so tpm works on what was already spent: a request is refused while the
key's tokens in the last minute have reached its tpm (L{RateLimiter.add_tokens} reports them).

Availability choice: if Redis is unreachable, slow or failing, L{RedisRateLimiter} B{fails open} (allows the
request) and logs a warning once per outage.  A limiter outage should not become a gateway outage; the cost is
that limits are not enforced meanwhile.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any, Protocol
from urllib.parse import urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred, FirstError, fail, gatherResults, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionLost, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol as TwistedProtocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: The window's length in seconds.
WINDOW = 60.0


@frozen
class Decision:
    """
    The verdict on one request.

    @ivar retry_after: seconds until the request would be allowed (0 when allowed); for a C{Retry-After} header.
    @ivar reason: C{"rpm"} or C{"tpm"} when refused, C{""} when allowed.
    """

    allowed: bool
    retry_after: float = 0.0
    reason: str = ""


ALLOW = Decision(True)


class RateLimiter(Protocol):
    def check(self, key_id: str, rpm: int | None, tpm: int | None) -> Deferred[Decision]:
        """
        Decide on one request for C{key_id} under the given limits (C{None}: unlimited); an allowed request is
        counted.
        """

    def add_tokens(self, key_id: str, n: int) -> None:
        """
        Charge C{n} tokens, spent by a finished response, to C{key_id}'s tpm window.
        """


class InProcessRateLimiter:
    """
    Exact sliding windows in this process's memory: per key, the times of the last minute's requests and the
    (time, tokens) pairs of its responses.  Memory per key is bounded by its rpm.
    """

    def __init__(self, clock: IReactorTime, window: float = WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, _TokenWindow] = {}

    def check(self, key_id: str, rpm: int | None, tpm: int | None) -> Deferred[Decision]:
        return succeed(self.check_now(key_id, rpm, tpm))

    def check_now(self, key_id: str, rpm: int | None, tpm: int | None) -> Decision:
        """
        L{check}, synchronously (this limiter never waits for anything).
        """
        now = self._clock.seconds()
        horizon = now - self._window
        if tpm is not None:
            spent = self._tokens.get(key_id)
            if spent is not None:
                spent.prune(horizon)
                if spent.total >= tpm:
                    return Decision(False, spent.free_at(tpm) + self._window - now, "tpm")
        if rpm is None:
            return ALLOW
        times = self._requests.get(key_id)
        if times is None:
            times = self._requests[key_id] = deque()
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= rpm:
            # The request that frees a slot is the one rpm places from the end.
            return Decision(False, times[len(times) - rpm] + self._window - now, "rpm")
        times.append(now)
        return ALLOW

    def add_tokens(self, key_id: str, n: int) -> None:
        if n <= 0:
            return
        spent = self._tokens.get(key_id)
        if spent is None:
            spent = self._tokens[key_id] = _TokenWindow()
        now = self._clock.seconds()
        spent.prune(now - self._window)
        spent.add(now, n)


class _TokenWindow:
    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, when: float, n: int) -> None:
        self.entries.append((when, n))
        self.total += n

    def prune(self, horizon: float) -> None:
        while self.entries and self.entries[0][0] <= horizon:
            self.total -= self.entries.popleft()[1]

    def free_at(self, limit: int) -> float:
        """
        The time of the entry whose expiry brings the total below C{limit}.
        """
        total = self.total
        for when, n in self.entries:
            total -= n
            if total < limit:
                return when
        return self.entries[-1][0]  # unreachable while total >= limit


# --- Redis -----------------------------------------------------------------------------------------------------

#: KEYS: requests hash, tokens hash (per-second buckets: field = epoch second, value = count).
#: ARGV: rpm (0 = none), tpm (0 = none), window seconds.  Returns {allowed, reason, retry_after_ms}.
#: Time comes from Redis, so every replica shares one clock.
_CHECK_LUA = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local rpm, tpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function live(key)
  local flat = redis.call('HGETALL', key)
  local buckets, total = {}, 0
  for i = 1, #flat, 2 do
    local s = tonumber(flat[i])
    if s <= sec - window then
      redis.call('HDEL', key, flat[i])
    else
      local n = tonumber(flat[i + 1])
      buckets[#buckets + 1] = {s, n}
      total = total + n
    end
  end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return buckets, total
end
local function retry_ms(buckets, total, limit)
  for _, b in ipairs(buckets) do
    total = total - b[2]
    if total < limit then
      return math.max(0, math.ceil((b[1] + window - now) * 1000))
    end
  end
  return math.ceil(window * 1000)
end
if tpm > 0 then
  local buckets, total = live(KEYS[2])
  if total >= tpm then return {0, 'tpm', retry_ms(buckets, total, tpm)} end
end
if rpm > 0 then
  local buckets, total = live(KEYS[1])
  if total >= rpm then return {0, 'rpm', retry_ms(buckets, total, rpm)} end
  redis.call('HINCRBY', KEYS[1], sec, 1)
  redis.call('EXPIRE', KEYS[1], window + 1)
end
return {1, '', 0}
"""

#: KEYS: tokens hash.  ARGV: tokens, window seconds.
_ADD_LUA = """
local sec = tonumber(redis.call('TIME')[1])
redis.call('HINCRBY', KEYS[1], sec, ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1)
return 1
"""


class RedisError(Exception):
    """
    Redis answered a command with an error reply.
    """


class _Incomplete(Exception):
    pass


def encode_command(*args: bytes | str | int | float) -> bytes:
    """
    One command as a RESP array of bulk strings.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse_reply(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """
    One RESP2 reply from C{buf} at C{pos}: C{(value, next position)}.  Error replies come back as L{RedisError}
    values (not raised), so one bad reply inside an array does not hide the rest.

    @raise _Incomplete: C{buf} ends before the reply does.
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete()
    kind, line = buf[pos:pos + 1], buf[pos + 1:end]
    pos = end + 2
    if kind == b"+":
        return line.decode("utf-8", "replace"), pos
    if kind == b"-":
        return RedisError(line.decode("utf-8", "replace")), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete()
        return buf[pos:pos + n], pos + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"not a RESP2 reply: {buf[pos - len(line) - 3:pos]!r}")


class RESPProtocol(TwistedProtocol):
    """
    A pipelining RESP2 client: each command's Deferred fires with its reply, in order.  On connection loss every
    pending command fails with L{ConnectionLost}.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._waiting: deque[Deferred[Any]] = deque()
        self.connected_ = False

    def connectionMade(self) -> None:
        self.connected_ = True

    def execute(self, *args: bytes | str | int | float) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._waiting.append(d)
        assert self.transport is not None
        self.transport.write(encode_command(*args))
        return d

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        pos = 0
        while pos < len(self._buf):
            try:
                value, pos_after = parse_reply(self._buf, pos)
            except _Incomplete:
                break
            except ValueError:
                log.failure("unparseable reply from Redis; dropping the connection")
                assert self.transport is not None
                self.transport.loseConnection()
                return
            pos = pos_after
            if not self._waiting:
                continue  # a reply nobody asked for; nothing sensible to do with it
            d = self._waiting.popleft()
            if isinstance(value, RedisError):
                d.errback(value)
            else:
                d.callback(value)
        self._buf = self._buf[pos:]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected_ = False
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(ConnectionLost(str(reason.value)))


class RedisRateLimiter:
    """
    Sliding-window limits shared by every gateway that points at the same Redis, with per-second buckets (so the
    window slides a second at a time).  One connection, opened on first use and reopened after a loss; while
    Redis is unreachable, connection attempts are spaced by C{retry_delay} and every check is allowed.

    Keys are C{PREFIX{KEY_ID}:r} and C{:t} (the braces are a Redis Cluster hash tag keeping a key's two hashes in
    one slot); they expire a minute after the last write.
    """

    def __init__(
        self,
        reactor: Any,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        prefix: str = "sapproxy:rl:",
        *,
        timeout: float = 0.5,
        retry_delay: float = 5.0,
        window: int = int(WINDOW),
    ) -> None:
        self._reactor = reactor
        self._endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=max(1, int(timeout * 4)))
        self._db = db
        self.prefix = prefix
        self._timeout = timeout
        self._retry_delay = retry_delay
        self._window = window
        self._proto: RESPProtocol | None = None
        self._connecting: list[Deferred[RESPProtocol]] | None = None
        self._down_until = 0.0
        self._warned = False
        self._check_sha = hashlib.sha1(_CHECK_LUA.encode()).hexdigest()
        self._add_sha = hashlib.sha1(_ADD_LUA.encode()).hexdigest()

    def check(self, key_id: str, rpm: int | None, tpm: int | None) -> Deferred[Decision]:
        if rpm is None and tpm is None:
            return succeed(ALLOW)
        d = self._script(self._check_sha, _CHECK_LUA, self._keys(key_id), (rpm or 0, tpm or 0, self._window))
        d.addCallback(self._decision)
        return d.addErrback(self._fail_open)

    def add_tokens(self, key_id: str, n: int) -> None:
        if n <= 0:
            return
        tokens_key = self._keys(key_id)[1]
        self._script(self._add_sha, _ADD_LUA, (tokens_key,), (n, self._window)).addErrback(self._fail_open)

    def disconnect(self) -> Deferred[None]:
        """
        Close the connection (for shutdown and tests); fires once it is closed.
        """
        proto, self._proto = self._proto, None
        if proto is None or proto.transport is None or not proto.connected_:
            return succeed(None)
        done: Deferred[None] = Deferred()
        original = proto.connectionLost

        def lost(reason: Failure = connectionDone) -> None:
            original(reason)
            done.callback(None)

        proto.connectionLost = lost  # type: ignore[method-assign]
        proto.transport.loseConnection()
        return done

    def _keys(self, key_id: str) -> tuple[str, str]:
        base = f"{self.prefix}{{{key_id}}}"
        return base + ":r", base + ":t"

    def _decision(self, reply: list[Any]) -> Decision:
        allowed, reason, retry_ms = reply
        if self._warned:
            self._warned = False
            log.info("Redis answers again; rate limits are enforced")
        if allowed:
            return ALLOW
        return Decision(False, int(retry_ms) / 1000.0, reason.decode() if isinstance(reason, bytes) else reason)

    def _script(self, sha: str, source: str, keys: tuple[str, ...], args: tuple[int, ...]) -> Deferred[Any]:
        def run(proto: RESPProtocol) -> Deferred[Any]:
            d = proto.execute("EVALSHA", sha, len(keys), *keys, *args)

            def noscript(failure: Failure) -> Any:
                failure.trap(RedisError)
                if not str(failure.value).startswith("NOSCRIPT"):
                    return failure
                return proto.execute("EVAL", source, len(keys), *keys, *args)

            return d.addErrback(noscript)

        d = self._connection().addCallback(run)
        return d.addTimeout(self._timeout, self._reactor)

    def _connection(self) -> Deferred[RESPProtocol]:
        if self._proto is not None and self._proto.connected_:
            return succeed(self._proto)
        if self._reactor.seconds() < self._down_until:
            return fail(ConnectionLost("Redis is unreachable (waiting before the next attempt)"))
        waiter: Deferred[RESPProtocol] = Deferred()
        if self._connecting is None:
            self._connecting = [waiter]
            attempt = self._endpoint.connect(Factory.forProtocol(RESPProtocol)).addCallback(self._select)
            attempt.addTimeout(self._timeout * 4, self._reactor)
            attempt.addCallbacks(self._connected, self._unreachable)
        else:
            self._connecting.append(waiter)
        return waiter

    def _select(self, proto: Any) -> Deferred[RESPProtocol]:
        # Load the scripts up front so that EVALSHA works from the first command; otherwise a NOSCRIPT retry
        # would reorder an add_tokens behind a check pipelined after it.  (NOSCRIPT is still handled, for a
        # SCRIPT FLUSH or a Redis restart behind a proxy.)
        setup = [proto.execute("SELECT", self._db)] if self._db else []
        setup += [proto.execute("SCRIPT", "LOAD", _CHECK_LUA), proto.execute("SCRIPT", "LOAD", _ADD_LUA)]
        done = gatherResults(setup, consumeErrors=True).addCallback(lambda _: proto)

        def failed(failure: Failure) -> Failure:
            proto.transport.loseConnection()
            return failure.value.subFailure if isinstance(failure.value, FirstError) else failure

        return done.addErrback(failed)

    def _connected(self, proto: RESPProtocol) -> None:
        self._proto = proto
        waiters, self._connecting = self._connecting or [], None
        for w in waiters:
            w.callback(proto)

    def _unreachable(self, failure: Failure) -> None:
        self._down_until = self._reactor.seconds() + self._retry_delay
        waiters, self._connecting = self._connecting or [], None
        for w in waiters:
            w.errback(failure)

    def _fail_open(self, failure: Failure) -> Decision:
        if failure.check(TimeoutError, DeferredTimeoutError):
            # Redis accepted the connection but stopped answering: drop it, and wait before trying again, so that
            # requests meanwhile are not each delayed by the timeout.
            proto, self._proto = self._proto, None
            if proto is not None and proto.transport is not None:
                proto.transport.loseConnection()
            self._down_until = self._reactor.seconds() + self._retry_delay
        if not self._warned:
            self._warned = True
            log.warn(
                "rate limiter cannot use Redis ({error}); allowing requests without limits until it is back",
                error=failure.getErrorMessage() or repr(failure.value),
            )
        return ALLOW


def make_rate_limiter(redis_url: str | None, reactor: Any) -> RateLimiter:
    """
    A L{RedisRateLimiter} for C{redis://[:password@]host[:port][/db]} (password not supported yet), or an
    L{InProcessRateLimiter} on C{reactor}'s clock when C{redis_url} is C{None} or empty.
    """
    if not redis_url:
        return InProcessRateLimiter(reactor)
    parts = urlsplit(redis_url)
    if parts.scheme != "redis":
        raise ValueError(f"unsupported Redis URL {redis_url!r} (expected redis://host:port/db)")
    if parts.password:
        raise ValueError("Redis AUTH is not supported yet; use a password-less Redis on a private network")
    path = parts.path.strip("/")
    db = int(path) if path else 0
    return RedisRateLimiter(reactor, parts.hostname or "127.0.0.1", parts.port or 6379, db)
