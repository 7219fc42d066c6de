"""
Values from an upstream that cannot be taken as they come: a broken or hostile upstream must cost a request
at most, never the gateway.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, cast

import treq
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import ConnectionClosed, TimeoutError
from twisted.internet.protocol import Protocol
from sapproxy.compat import RequestTransmissionFailed
from twisted.web.client import ResponseFailed

from sapproxy.errors import GatewayError

#: The longest C{Retry-After} honoured, in seconds; longer (and unparsable) values are ignored, and the
#: retry policy's own backoff applies.  (The policy's C{max_wait} bounds the total wait anyway.)
MAX_RETRY_AFTER = 3600.0


def retry_after_seconds(values: Sequence[bytes] | None) -> float | None:
    """
    The delay a C{Retry-After} header asks for, in seconds: a finite, non-negative number of at most
    L{MAX_RETRY_AFTER}; L{None} for anything else (C{inf}, C{nan}, C{1e400}, an HTTP date, garbage), which
    once ended a request in an HTML 500.
    """
    if not values:
        return None
    try:
        seconds = float(values[0].strip()[:32])
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_RETRY_AFTER:
        return None
    return seconds


class BodyFailed(Exception):
    """
    A whole upstream response broke (reset, timeout) before its end; nothing of it reached the client, so
    the dispatcher may try the next deployment.
    """

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error


class _TooLarge(Exception):
    pass


async def read_whole(response: Any, clock: Any, *, timeout: float, limit: int) -> bytes:
    """
    The body of a whole (non-stream) upstream response, at most C{limit} bytes: a larger one (declared or
    sent) is cut off and answered with a 502 instead of being held (400 MB once took 1.3 GiB of memory).

    @raise GatewayError: the body is over C{limit} (C{bad_gateway}).
    @raise BodyFailed: the body broke or stalled for C{timeout} seconds.
    """
    declared = response.length if isinstance(response.length, int) else None
    if declared is not None and declared > limit:
        response.deliverBody(_Discard())
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0

    def collect(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise _TooLarge()
        parts.append(data)

    d = treq.collect(response, collect)
    d.addTimeout(timeout, clock)
    try:
        await d
    except _TooLarge:
        raise _too_large(limit) from None
    except (TimeoutError, DeferredTimeoutError):
        raise BodyFailed(GatewayError("timeout", f"the upstream's response stalled for {timeout:g} s")) from None
    except (ResponseFailed, ConnectionClosed, RequestTransmissionFailed):
        raise BodyFailed(GatewayError("bad_gateway", "the upstream connection broke in its response")) from None
    return b"".join(parts)


def _too_large(limit: int) -> GatewayError:
    return GatewayError("bad_gateway", f"the upstream's response is larger than the gateway's limit of {limit} "
                        "bytes (max_response_bytes)")


class _Discard(Protocol):
    def connectionMade(self) -> None:
        if self.transport is not None:
            cast(Any, self.transport).stopProducing()
