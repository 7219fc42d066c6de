"""
A client that stops reading its stream.

Under backpressure the relay pauses the upstream and disarms its idle timer (the silence is ours, not the
upstream's).  A client that never reads again would then hold its stream, and the upstream connection, for
ever.  L{StallWatch} times the pause: past C{timeout} seconds without the client taking anything, the relay
drops the client and closes the upstream.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger()


class StallWatch:
    def __init__(self, clock: IReactorTime, timeout: float, on_stall: Callable[[], None]) -> None:
        self._clock = clock
        self._timeout = timeout
        self._on_stall = on_stall
        self._call: IDelayedCall | None = None

    def paused(self) -> None:
        """
        The client's socket is full: start timing, unless already timing.
        """
        if self._call is None:
            self._call = self._clock.callLater(self._timeout, self._fire)

    def resumed(self) -> None:
        """
        The client took data (or the stream is over): stop timing.
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _fire(self) -> None:
        self._call = None
        log.info("a client read nothing of its stream for {t:g} s; disconnecting it", t=self._timeout)
        self._on_stall()


def drop_client(request: Any) -> None:
    """
    Close C{request}'s connection at once, discarding what is buffered for it (it is not reading).
    """
    channel = getattr(request, "channel", None)
    transport = getattr(channel, "transport", None)
    if transport is not None:
        abort = getattr(transport, "abortConnection", None) or transport.loseConnection
        abort()
