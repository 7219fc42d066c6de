"""
Per-key rate limits: requests per minute (rpm) and tokens per minute (tpm) over a sliding 60-second window.

This module is the package's public face: the verdict (L{Decision}), the interface every limiter provides
(L{IRateLimiter}) and L{make_rate_limiter}, which picks one from the configured C{redis_url}.  The two
implementations live beside it:

  - L{sapproxy.ratelimit.memory.InProcessRateLimiter}: an exact sliding window in memory, on an injected clock;
    right for one gateway process.
  - L{sapproxy.ratelimit.redis.RedisRateLimiter}: the window lives in Redis, updated atomically by a Lua
    script, so any number of gateway replicas enforce one shared limit; it talks to Redis with txredisapi and
    B{fails open} (allows requests) while Redis is unreachable, slow or failing.

Tokens are only known after a response, so tpm works on what was already spent: a request is refused while the
key's tokens in the last minute have reached its tpm (L{IRateLimiter.add_tokens} reports them).
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred
from zope.interface import Interface

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


#: The verdict for an allowed request.
ALLOW = Decision(True)


class IRateLimiter(Interface):
    """
    Per-key rpm/tpm limits, as the route frame uses them: one L{check} before a request is sent upstream, one
    L{add_tokens} once its usage is known, and L{disconnect} when the gateway shuts down.
    """

    def check(key_id: str, rpm: int | None, tpm: int | None) -> Deferred[Decision]:
        """
        Decide on one request for C{key_id} under the given limits (C{None}: unlimited); an allowed request is
        counted.  Never fails: a limiter that cannot decide allows.
        """

    def add_tokens(key_id: str, n: int) -> None:
        """
        Charge C{n} tokens, spent by a finished response, to C{key_id}'s tpm window.  Does not wait.
        """

    def disconnect() -> Deferred[None]:
        """
        Release what the limiter holds open (connections); fires once it is released.  A later L{check} works
        again (it reconnects if it needs to).
        """


def make_rate_limiter(redis_url: str | None, reactor: Any) -> IRateLimiter:
    """
    A L{sapproxy.ratelimit.redis.RedisRateLimiter} for a C{redis://[[user]:password@]host[:port][/db]} URL, or
    an L{sapproxy.ratelimit.memory.InProcessRateLimiter} on C{reactor}'s clock when C{redis_url} is C{None} or
    empty.

    @raise ValueError: C{redis_url} is not such a URL (the message never repeats the password).
    """
    if not redis_url:
        from sapproxy.ratelimit.memory import InProcessRateLimiter

        return InProcessRateLimiter(reactor)
    from sapproxy.ratelimit.address import parse_redis_url

    address = parse_redis_url(redis_url)
    # Imported here, not above: txredisapi installs the global reactor when imported, which a process without
    # Redis (or one that has not chosen its reactor yet) must not have done to it.
    from sapproxy.ratelimit.redis import RedisRateLimiter

    return RedisRateLimiter(reactor, address)


__all__ = ["ALLOW", "WINDOW", "Decision", "IRateLimiter", "make_rate_limiter"]
