"""
Writing a simulated stream with backpressure, pacing and mid-stream faults.

The events come from a lazy iterator, one HTTP chunk per event, and are only pulled while the client's
connection is not paused: a 200 MB stream to a client that stopped reading stays in the iterator, not in the
simulator's memory. Delays use the injected clock so tests drive time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

#: Bytes written in one reactor turn when there is no delay, before yielding to other connections.
_BATCH_BYTES = 256 * 1024

MID_STREAM_FAULTS = frozenset({"reset_mid_stream", "stall_mid_stream", "error_mid_stream"})


@implementer(IPushProducer)
class EventStream:
    """
    A push producer that writes C{events} to C{request}; C{done} fires with C{b""} when the stream is over
    (what Klein needs to finish the request) and is cancelled by Klein when the client goes.
    """

    def __init__(
        self,
        request: Request,
        clock: IReactorTime,
        events: Iterator[bytes],
        *,
        delay: float = 0.0,
        fault: str | None = None,
        fault_after: int = 0,
        error_event: Callable[[], bytes] | None = None,
        on_close: Callable[[], None] = lambda: None,
        on_write: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._request = request
        self._clock = clock
        self._events = events
        self._delay = delay
        self._fault = fault if fault in MID_STREAM_FAULTS else None
        self._fault_after = fault_after
        self._error_event = error_event
        self._on_close = on_close
        self._on_write = on_write
        self._paused = False
        self._closed = False
        self._stalled = False
        self._pending: IDelayedCall | None = None
        self.written = 0
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def start(self) -> Deferred[bytes]:
        """Register with the request and write the first events now; returns L{done}."""
        self._request.registerProducer(self, True)
        self._tick()
        return self.done

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._pending is None and not self._closed and not self._stalled:
            self._pending = self._clock.callLater(0, self._tick)

    def stopProducing(self) -> None:
        self._close()

    # the loop

    def _tick(self) -> None:
        self._pending = None
        batch = 0
        while not (self._paused or self._closed or self._stalled):
            if self._fault is not None and self.written >= self._fault_after:
                self._inject_fault()
                return
            try:
                event = next(self._events)
            except StopIteration:
                self._finish()
                return
            self._request.write(event)
            self.written += 1
            self._on_write(len(event))
            batch += len(event)
            if self._delay > 0:
                if not self._closed:
                    self._pending = self._clock.callLater(self._delay, self._tick)
                return
            if batch >= _BATCH_BYTES and not self._paused:
                self._pending = self._clock.callLater(0, self._tick)
                return

    def _inject_fault(self) -> None:
        fault = self._fault
        self._fault = None
        if fault == "reset_mid_stream":
            transport = self._request.channel.transport if self._request.channel else None
            if transport is not None:
                abort_after_flush(transport, self._clock)
            # Leave done unfired: the connection loss makes Klein cancel it, after the request is marked
            # finished, so no error page is attempted on the dead connection.
            self._close()
        elif fault == "stall_mid_stream":
            # Stop writing but keep the connection: only the client's hang-up (Klein's cancel) ends it.
            self._stalled = True
        elif fault == "error_mid_stream":
            if self._error_event is not None:
                self._request.write(self._error_event())
                self.written += 1
            self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        try:
            self._request.unregisterProducer()
        except (AttributeError, RuntimeError):
            pass
        self._close()
        self.done.callback(b"")

    def _close(self, reason: Exception | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        self._on_close()
        if reason is not None and not self.done.called:
            self.done.errback(Failure(reason))

    def _cancel(self, d: Deferred[bytes]) -> None:
        # The client went away: stop generating. The Deferred then fails with CancelledError, which Klein
        # ignores on a finished request.
        self._close()


def _unsent(transport: object) -> int:
    """Bytes a Twisted socket transport still holds in user space (0 for transports that do not say)."""
    buffered = getattr(transport, "dataBuffer", b"")
    offset = getattr(transport, "offset", 0)
    temp = getattr(transport, "_tempDataLen", 0)
    try:
        return max(0, len(buffered) - int(offset)) + int(temp)
    except TypeError:
        return 0


def abort_after_flush(transport: object, clock: IReactorTime, tries: int = 200) -> None:
    """
    Reset the TCP connection once the events already written have left Twisted's buffer, so the client sees
    them and then the reset (C{abortConnection} alone would silently drop them). Gives up waiting after
    about a second, e.g. when the client is not reading.
    """
    if _unsent(transport) > 0 and tries > 0:
        clock.callLater(0.005, abort_after_flush, transport, clock, tries - 1)
        return
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        lose = getattr(transport, "loseConnection", None)
        if lose is not None:
            lose()
