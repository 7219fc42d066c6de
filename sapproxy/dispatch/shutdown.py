"""
The end of the drain time at shutdown, for requests that have not answered yet.

Streams under way get an error event through their relay.  A request still waiting for an upstream's
response headers used to get a TCP reset (recorded as a 499): now its upstream call is cancelled and the
route answers the client a 503 in its own dialect (C{overloaded}: retry the request), which is what a
client's retry logic expects of a gateway going away.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet.defer import Deferred

from sapproxy.errors import GatewayError

_ATTRIBUTE = "_sapproxy_shutdown"


class Waiting:
    """
    The upstream calls that have not had their response headers yet.
    """

    def __init__(self) -> None:
        self._calls: set[Deferred[Any]] = set()

    def __len__(self) -> int:
        return len(self._calls)

    def track(self, d: Deferred[Any]) -> None:
        self._calls.add(d)

        def settled(result: Any) -> Any:
            self._calls.discard(d)
            return result

        d.addBoth(settled)

    def add(self, d: Deferred[Any]) -> None:
        """
        List C{d}; whoever adds it calls L{discard} once it has fired (L{track} does both).
        """
        self._calls.add(d)

    def discard(self, d: Deferred[Any]) -> None:
        self._calls.discard(d)

    def cancel_all(self) -> int:
        calls = list(self._calls)
        for d in calls:
            d.cancel()
        return len(calls)


def end_waiting(requests: Iterable[Any], waiting: Waiting, error: GatewayError) -> int:
    """
    Mark every request that has written nothing yet to be answered with C{error}, then cancel the upstream
    calls still waiting; returns how many calls were cancelled.
    """
    for request in requests:
        if not request.startedWriting:
            setattr(request, _ATTRIBUTE, error)
    return waiting.cancel_all()


def shutdown_error(request: Any) -> GatewayError | None:
    """
    The error a request cancelled by L{end_waiting} is to be answered with, or L{None}.
    """
    return getattr(request, _ATTRIBUTE, None)
