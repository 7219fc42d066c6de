"""
Values from an upstream that cannot be taken as they come: a broken or hostile upstream must cost a request
at most, never the gateway.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from sapproxy.compat import RequestTransmissionFailed

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


def read_whole(response: Any, clock: IReactorTime, *, timeout: float, limit: int) -> Deferred[bytes]:
    """
    The body of a whole (non-stream) upstream response, at most C{limit} bytes: a larger one (declared or
    sent) is cut off and answered with a 502 instead of being held (400 MB once took 1.3 GiB of memory).

    Read by a protocol of its own with one timer, where C{treq.collect} with a timeout took two Deferreds,
    their callbacks and a timer; a body that stalls or grows too large also closes its connection.

    @return: a L{Deferred} that fails with L{GatewayError} when the body is over C{limit} (C{bad_gateway}),
        and with L{BodyFailed} when the body broke or took more than C{timeout} seconds.
    """
    declared = response.length if isinstance(response.length, int) else None
    if declared is not None and declared > limit:
        response.deliverBody(_Discard())
        return fail(_too_large(limit))
    if declared == 0:
        return succeed(b"")
    body = _WholeBody(clock, timeout, limit)
    response.deliverBody(body)
    return body.done


class _WholeBody(Protocol):
    """
    Gathers a whole response body into C{done}, within C{limit} bytes and C{timeout} seconds; cancelling
    C{done} (the client went away) closes the upstream connection.
    """

    def __init__(self, clock: IReactorTime, timeout: float, limit: int) -> None:
        self.done: Deferred[bytes] = Deferred(self._cancelled)
        self._done: Deferred[bytes] | None = self.done
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._timeout = timeout
        self._timer = clock.callLater(timeout, self._expired)

    def dataReceived(self, data: bytes) -> None:
        if self._done is None:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._give_up(_too_large(self._limit))
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        done = self._done
        if done is None:
            return
        self._done = None
        if self._timer.active():
            self._timer.cancel()
        parts, self._parts = self._parts, []
        # isinstance, not Failure.check, which works out the qualified name of every class of the type.
        ended = reason.value
        if isinstance(ended, (ResponseDone, PotentialDataLoss)):
            done.callback(parts[0] if len(parts) == 1 else b"".join(parts))
        elif isinstance(ended, (ResponseFailed, ConnectionClosed, RequestTransmissionFailed)):
            done.errback(BodyFailed(GatewayError("bad_gateway", "the upstream connection broke in its response")))
        else:
            done.errback(reason)

    def _expired(self) -> None:
        self._give_up(BodyFailed(GatewayError("timeout", f"the upstream's response stalled for {self._timeout:g} s")))

    def _cancelled(self, _: Deferred[bytes]) -> None:
        self._give_up(None)  # Deferred.cancel fails C{done} with CancelledError

    def _give_up(self, error: Exception | None) -> None:
        done = self._done
        if done is None:
            return
        self._done = None
        self._parts = []
        if self._timer.active():
            self._timer.cancel()
        if self.transport is not None:
            cast(Any, self.transport).stopProducing()  # nothing more of this body is wanted: close its connection
        if error is not None:
            done.errback(error)


def _too_large(limit: int) -> GatewayError:
    return GatewayError("bad_gateway", f"the upstream's response is larger than the gateway's limit of {limit} "
                        "bytes (max_response_bytes)")


class _Discard(Protocol):
    def connectionMade(self) -> None:
        if self.transport is not None:
            cast(Any, self.transport).stopProducing()
