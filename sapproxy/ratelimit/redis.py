"""
The shared limiter: sliding windows kept in Redis, so that any number of gateway replicas enforce one limit.

It talks to Redis with txredisapi (a maintained Twisted Redis client) rather than the blocking redis-py in
threads.  txredisapi schedules its timers and reconnects on the global reactor, so C{reactor} must be the
reactor the process runs (as under twistd); this limiter's own timeouts use the reactor it is given.

Availability choice: if Redis is unreachable, slow or failing, the limiter B{fails open} (allows the request)
and logs one warning per outage, and one line when Redis answers again.  A limiter outage should not become a
gateway outage; the cost is that limits are not enforced meanwhile, and tokens spent meanwhile are not charged.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeoutError, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sapproxy.ratelimit import ALLOW, WINDOW, Decision, IRateLimiter
from sapproxy.ratelimit.address import RedisAddress

log = Logger()

#: KEYS: requests hash, tokens hash (per-second buckets: field = epoch second, value = count).
#: ARGV: rpm (0 = none), tpm (0 = none), window seconds.  Returns {allowed, reason, retry_after_ms}.
#: Time comes from Redis, so every replica shares one clock.
CHECK_SCRIPT = """
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
ADD_SCRIPT = """
local sec = tonumber(redis.call('TIME')[1])
redis.call('HINCRBY', KEYS[1], sec, ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1)
return 1
"""

#: The first reconnection after a lost connection is this quick (a Redis restart, a killed client); later
#: attempts back off (by a factor of e) up to the limiter's C{retry_delay}.
FIRST_RECONNECT_DELAY = 0.1


@implementer(IRateLimiter)
class RedisRateLimiter:
    """
    Sliding-window limits shared by every gateway that points at the same Redis database, with per-second
    buckets (so the window slides a second at a time), checked and charged by two Lua scripts (EVALSHA, with
    EVAL when Redis does not know them yet).

    One connection, opened on first use, selected into C{address.database} and logged in as C{address}'s user;
    it is reopened in the background after a loss.  Each call waits at most C{timeout} seconds.  While Redis is
    known to be down (no connection, or a timeout less than C{retry_delay} seconds ago) checks are allowed at
    once instead of each waiting for the timeout.

    Keys are C{PREFIX{KEY_ID}:r} and C{:t} (the braces are a Redis Cluster hash tag keeping a key's two hashes in
    one slot); they expire a minute after the last write.
    """

    def __init__(
        self,
        reactor: Any,
        address: RedisAddress = RedisAddress(),
        prefix: str = "sapproxy:rl:",
        *,
        timeout: float = 0.5,
        retry_delay: float = 5.0,
        window: int = int(WINDOW),
    ) -> None:
        self._reactor = reactor
        self.address = address
        self.prefix = prefix
        self._timeout = timeout
        self._retry_delay = retry_delay
        self._window = window
        self._factory: Any = None
        self._outage = False
        self._quiet_until = 0.0
        self._refusal: str | None = None

    @property
    def database(self) -> int:
        """
        The Redis database (C{SELECT} index) the limits are kept in.
        """
        return self.address.database

    @property
    def connected(self) -> bool:
        """
        Whether a connection to Redis is open and ready (logged in, database selected) right now.
        """
        return self._live() is not None

    @property
    def local_address(self) -> tuple[str, int] | None:
        """
        This end of the open connection as C{(host, port)}, C{None} without one: the C{addr} that Redis's
        C{CLIENT LIST} shows for this limiter, for an operator to find it there (or a test to C{CLIENT KILL} it).
        """
        conn = self._live()
        if conn is None:
            return None
        host = conn.transport.getHost()
        return (host.host, host.port)

    def check(self, key_id: str, rpm: int | None, tpm: int | None) -> Deferred[Decision]:
        if rpm is None and tpm is None:
            return succeed(ALLOW)
        d = self._run(CHECK_SCRIPT, self._keys(key_id), (rpm or 0, tpm or 0, self._window))
        if d is None:
            return succeed(ALLOW)
        d.addCallback(self._decision)
        return d.addErrback(self._fail_open)

    def add_tokens(self, key_id: str, n: int) -> None:
        if n <= 0:
            return
        d = self._run(ADD_SCRIPT, self._keys(key_id)[1:], (n, self._window))
        if d is not None:
            d.addCallback(self._answered).addErrback(self._fail_open)

    def disconnect(self) -> Deferred[None]:
        """
        Close the connection and stop reconnecting (at shutdown); fires once it is closed.  A later call
        connects again.
        """
        factory, self._factory = self._factory, None
        if factory is None:
            return succeed(None)

        def closed(_: object) -> None:
            log.info("rate limiter: closed the connection to Redis at {host}:{port}", host=self.address.host,
                     port=self.address.port)

        return factory.disconnect().addCallback(closed)

    def _keys(self, key_id: str) -> tuple[str, str]:
        base = f"{self.prefix}{{{key_id}}}"
        return base + ":r", base + ":t"

    def _live(self) -> Any:
        if self._factory is None:
            return None
        for conn in self._factory.pool:
            if conn.connected and conn.transport is not None:
                return conn
        return None

    def _run(self, script: str, keys: tuple[str, ...], args: tuple[int, ...]) -> Deferred[Any] | None:
        """
        Run one script, or C{None} when Redis is known to be down (the caller allows without waiting).
        """
        if self._outage and (self._reactor.seconds() < self._quiet_until or not self.connected):
            return None
        d: Deferred[Any] = self._client().eval(script, list(keys), list(args))
        return d.addTimeout(self._timeout, self._reactor)

    def _client(self) -> Any:
        if self._factory is None:
            a = self.address
            factory = txredisapi.RedisFactory(
                f"{a.host}:{a.port}", a.database or None, 1, isLazy=True, charset="utf-8", password=a.password,
                username=a.username, replyTimeout=self._timeout, convertNumbers=False,
            )
            factory.initialDelay = FIRST_RECONNECT_DELAY
            factory.maxDelay = self._retry_delay
            # Fails when Redis refuses the login or the database; txredisapi then stops trying for good.
            factory.deferred.addCallbacks(lambda _: None, self._refused)
            factory.startConnecting(HostnameEndpoint(self._reactor, a.host, a.port, timeout=max(1.0, 4 * self._timeout)))
            self._factory = factory
        return self._factory.handler

    def _answered(self, reply: Any) -> Any:
        if self._outage:
            self._outage = False
            log.info("Redis answers again; rate limits are enforced")
        return reply

    def _decision(self, reply: list[Any]) -> Decision:
        self._answered(reply)
        allowed, reason, retry_ms = reply
        if allowed:
            return ALLOW
        return Decision(False, int(retry_ms) / 1000.0, reason.decode() if isinstance(reason, bytes) else reason)

    def _refused(self, failure: Failure) -> None:
        self._refusal = failure.getErrorMessage()
        self._outage = True
        log.error("Redis refused the rate limiter ({error}); rate limits are not enforced until the gateway "
                  "restarts with a redis_url that Redis accepts", error=self._refusal)

    def _fail_open(self, failure: Failure) -> Decision:
        error = self._refusal or failure.getErrorMessage() or repr(failure.value)
        if failure.check(DeferredTimeoutError, txredisapi.TimeoutError):
            # Redis stopped answering (or never connected): drop the connection, and for retry_delay do not ask,
            # so that requests meanwhile are not each held for the timeout.
            self._quiet_until = self._reactor.seconds() + self._retry_delay
            live = self._live()
            if live is None:
                error = self._refusal or f"no connection within {self._timeout} seconds"
            else:
                error = f"no answer within {self._timeout} seconds"
                live.transport.abortConnection()
        if not self._outage:
            self._outage = True
            log.warn(
                "rate limiter cannot use Redis at {host}:{port} ({error}); allowing requests without limits "
                "until it is back",
                host=self.address.host, port=self.address.port, error=error,
            )
        return ALLOW
