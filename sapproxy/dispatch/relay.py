"""
Moving a streamed upstream body to a client, event by event, at the client's pace.

L{StreamRelay} is the protocol an upstream response delivers its body to, and the push producer the client's
request is paused through: when the client's socket buffer fills, twisted.web calls L{pauseProducing}, which
pauses the upstream transport, so a slow reader holds the upstream back instead of filling the gateway's
memory.  It also owns the stream's clocks: an idle timer (silence from the upstream, not length, marks a
broken stream) and a keep-alive that tells clients with stall watchdogs that the stream is alive.

The upstream's body arrives one HTTP chunk at a time, and a fast upstream packs many chunks (events) into
one socket read.  The relay gathers what arrives within one reactor turn and converts and writes it in one
go when the turn's I/O is done: one pipeline call, one write and one clock update per read, not per event.
Nothing waits on a timer; a lone event is written in the same turn it was read.
"""

from __future__ import annotations

from typing import Any, Callable, cast

from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from sapproxy.errors import GatewayError
from sapproxy.translate.framing.pipeline import StreamPipeline
from sapproxy.interfaces import IClientAPI
from sapproxy.runtime import IGatewayRequest

from sapproxy.dispatch.stall import StallWatch, drop_client

log = Logger()


class FailedBeforeFirstByte(Exception):
    """
    The upstream stream broke before anything reached the client, so the request can still be retried
    elsewhere: nothing the client saw has to be taken back.
    """

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error


@define
class StreamOutcome:
    first_byte_at: float | None = None
    error: GatewayError | None = None
    client_hung_up: bool = False


@implementer(IPushProducer)
class StreamRelay(Protocol):
    """
    @ivar done: fires with a L{StreamOutcome} when the stream is over, whether it ended, broke after the
        first byte (an error event was written) or the client hung up; errbacks with
        L{FailedBeforeFirstByte} when it broke before anything was written.  Cancelling it (Klein does when
        the client goes) closes the upstream connection.
    """

    def __init__(
        self,
        request: IGatewayRequest,
        pipeline: StreamPipeline,
        client: IClientAPI,
        clock: IReactorTime,
        *,
        idle_timeout: float,
        keepalive: float,
        on_first_write: Callable[[], None],
        drain_on_hangup: bool = False,
        write_stall: float = 300.0,
    ) -> None:
        self._request = request
        self._pipeline = pipeline
        self._client = client
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._keepalive = keepalive
        self._on_first_write = on_first_write
        self._drain_on_hangup = drain_on_hangup
        self._stall = StallWatch(clock, write_stall, self._client_stalled)
        #: After a hang-up in drain mode: fires when the upstream stream has been read to its end, so the
        #: usage it reports at the end can still be recorded.
        self.drained: Deferred[None] | None = None
        self._idle: IDelayedCall | None = None
        self._ping: IDelayedCall | None = None
        #: When the upstream last sent something, and when we last wrote a keep-alive: the two timers
        #: check these when they fire, so a read costs one clock reading instead of two timer resets.
        self._heard_at = 0.0
        self._pinged_at = 0.0
        #: Upstream bytes read in this reactor turn, not yet converted (see the module docstring).
        self._pending: list[bytes] = []
        self._flush_call: IDelayedCall | None = None
        self._paused = False
        self._over = False
        self._registered = False
        self._upstream: IPushProducer | None = None
        self.outcome = StreamOutcome()
        self.done: Deferred[StreamOutcome] = Deferred(lambda _: self._client_gone())

    @property
    def pipeline(self) -> StreamPipeline:
        """
        The pipeline the upstream's bytes go through (its usage and output so far are the stream's).
        """
        return self._pipeline

    # IProtocol: the upstream body.

    def connectionMade(self) -> None:
        # The response body's transport is a TransportProxyProducer: pausing it pauses the upstream socket.
        self._upstream = cast(IPushProducer, self.transport)
        try:
            self._request.registerProducer(self, True)
            self._registered = True
        except (AttributeError, RuntimeError):
            # The client went away before the upstream answered.
            self._client_gone()
            return
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        if self._over:
            return
        self._pending.append(data)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        """
        Convert and write what the upstream sent in this reactor turn.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        pending = self._pending
        if not pending or self._over:
            return
        self._pending = []
        self._heard_at = self._clock.seconds()
        try:
            chunks = self._pipeline.feed(pending[0] if len(pending) == 1 else b"".join(pending))
        except Exception as e:
            self._broken(GatewayError("bad_gateway", f"upstream sent a malformed stream: {e}"))
            return
        if chunks:
            self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        self._flush()
        if self._over:
            return
        if not isinstance(reason.value, ResponseDone):  # not Failure.check, which names every class of the type
            self._broken(GatewayError("bad_gateway", "the upstream connection broke mid-stream"))
            return
        try:
            chunks = self._pipeline.finish()
        except Exception as e:
            self._broken(GatewayError("bad_gateway", f"upstream sent a malformed stream: {e}"))
            return
        if self._client.done:
            chunks.append(self._client.done)
        if chunks:
            self._write(b"".join(chunks))
        self._end()

    # IPushProducer: the client's pace.

    def pauseProducing(self) -> None:
        self._paused = True
        # Our own backpressure silences the upstream; that silence is not the upstream's fault.
        self._disarm()
        self._stall.paused()
        if self._upstream is not None:
            self._upstream.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        self._stall.resumed()
        if self._upstream is not None:
            self._upstream.resumeProducing()
        if not self._over:
            self._arm()

    def stopProducing(self) -> None:
        self._client_gone()

    def end_with(self, error: GatewayError) -> None:
        """
        End the stream from our side: close the upstream, tell the client why, finish cleanly.
        """
        if not self._over:
            self._broken(error)

    # The rest.

    def _write(self, chunk: bytes) -> None:
        if self.outcome.client_hung_up:
            return
        if self.outcome.first_byte_at is None:
            self.outcome.first_byte_at = self._clock.seconds()
            self._on_first_write()
        self._request.write(chunk)

    def _arm(self) -> None:
        """
        (Re)start both clocks from now: the stream began, or the client's backpressure ended.
        """
        if self._paused:
            return
        self._heard_at = self._pinged_at = self._clock.seconds()
        if self._idle is None:
            self._idle = self._clock.callLater(self._idle_timeout, self._idle_check)
        if self._ping is None:
            self._ping = self._clock.callLater(self._keepalive, self._keepalive_check)

    def _disarm(self) -> None:
        for call in (self._idle, self._ping):
            if call is not None and call.active():
                call.cancel()
        self._idle = self._ping = None

    def _keepalive_check(self) -> None:
        self._ping = None
        if self._over or self._paused:
            return
        now = self._clock.seconds()
        due = max(self._heard_at, self._pinged_at) + self._keepalive
        if now < due:
            self._ping = self._clock.callLater(due - now, self._keepalive_check)
            return
        self._pinged_at = now
        self._write(self._client.keepalive)
        self._ping = self._clock.callLater(self._keepalive, self._keepalive_check)

    def _idle_check(self) -> None:
        self._idle = None
        if self._over or self._paused:
            return
        now = self._clock.seconds()
        due = self._heard_at + self._idle_timeout
        if now < due:
            self._idle = self._clock.callLater(due - now, self._idle_check)
            return
        self._stop_upstream()
        self._broken(GatewayError("timeout", f"the upstream sent nothing for {self._idle_timeout:g} seconds"))

    def _broken(self, error: GatewayError) -> None:
        self._stop_upstream()
        if self.drained is not None:
            self._finish_with()
            return
        self.outcome.error = error
        if self.outcome.first_byte_at is None:
            self._finish_with(failure=FailedBeforeFirstByte(error))
            return
        # The client-side translator's own last event where it has one (a Responses stream's response.failed).
        self._request.write(self._pipeline.failure(error.kind, error.message) or self._client.error_event(error))
        if self._client.done:
            self._request.write(self._client.done)
        self._end()

    def _client_gone(self) -> None:
        if self._over or self.drained is not None:
            return
        self.outcome.client_hung_up = True
        # What was read before the hang-up still counts (its usage, its output): converted, not written.
        pending, self._pending = self._pending, []
        if pending:
            try:
                self._pipeline.feed(b"".join(pending))
            except Exception:
                pass
        if self._drain_on_hangup and self._upstream is not None:
            # Keep reading the upstream, writing nothing, until it ends: its last events carry the usage.
            self.drained = Deferred()
            if self._registered:
                self._registered = False
                try:
                    self._request.unregisterProducer()
                except Exception:
                    pass
            self._paused = False
            self._upstream.resumeProducing()
            self._arm()
            if not self.done.called:
                self.done.callback(self.outcome)
            return
        self._stop_upstream()
        self._end()

    def _client_stalled(self) -> None:
        # A client that reads nothing holds its stream, and the upstream connection, for ever otherwise.
        if self._over:
            return
        drop_client(self._request)
        self._drain_on_hangup = False
        self._client_gone()

    def _stop_upstream(self) -> None:
        if self._upstream is not None:
            try:
                self._upstream.stopProducing()
            except Exception:
                log.failure("stopping the upstream transport")

    def _end(self) -> None:
        self._finish_with()

    def _finish_with(self, failure: Exception | None = None) -> None:
        self._over = True
        self._disarm()
        self._stall.resumed()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._pending = []
        if self.drained is not None and not self.drained.called:
            self.drained.callback(None)
        if self._registered:
            self._registered = False
            try:
                self._request.unregisterProducer()
            except Exception:
                pass
        if self.done.called:
            return
        if failure is not None:
            self.done.errback(failure)
        else:
            self.done.callback(self.outcome)
