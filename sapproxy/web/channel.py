"""
The client connection: deadlines that trickled bytes cannot extend, answers for oversized heads, and room
for normal clients when file descriptors run short.

twisted.web's channel resets its one idle timer on every byte, so a client sending a byte every few seconds
keeps a connection (and a descriptor) for ever; 20,000 such connections took the service down.  Here:

  - the request line and headers must arrive within C{headers_deadline} seconds of the connection opening
    (or of the previous response ending, on a kept-alive connection), and the body within C{body_deadline}
    seconds of the headers, however the bytes are spread;
  - a header line over L{MAX_LINE} or a head over L{MAX_HEAD} bytes is answered 431 (the default channel
    closed the connection without a word);
  - when the open connections reach the site's C{max_connections}, the oldest connection that has not sent
    a whole request yet is closed to make room: slow-header attackers go first, requests under way stay.
"""

from __future__ import annotations

import json
import resource
from typing import Any, cast

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.web import http

log = Logger()

#: The longest header line, and the largest request head (request line and headers), in bytes.
MAX_LINE = 32 * 1024
MAX_HEAD = 64 * 1024


class GatewayChannel(http.HTTPChannel):
    MAX_LENGTH = MAX_LINE
    totalHeadersSize = MAX_HEAD

    #: The connection's one timer (see L{_start}), and when the current phase's deadline falls (L{None}: none).
    _deadline: IDelayedCall | None = None
    _deadline_at: float | None = None
    _phase = "head"
    _got_bytes = False
    _closing = False

    def connectionMade(self) -> None:
        super().connectionMade()
        site = self.factory
        site.connections += 1
        site.channels[self] = None
        self._start("head")

    def dataReceived(self, data: bytes) -> None:
        self._got_bytes = True
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._phase == "head" and self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse(b"431 Request Header Fields Too Large",
                         f"the request's headers exceed {self.totalHeadersSize} bytes")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse(b"431 Request Header Fields Too Large", f"a request header line exceeds {self.MAX_LENGTH} bytes")

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        if not self._closing:
            self._start("body")

    def allContentReceived(self) -> None:
        if self._closing:
            return  # already answered (413, 431, 408): the request is not dispatched
        self._stop()
        self._phase = "handling"
        self.factory.channels.pop(self, None)
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.transport is not None and not self._closing and self.persistent and not self._handlingRequest:
            # Kept alive: the next request's head has the same deadline (it is also the idle timeout).
            self._got_bytes = False
            self.factory.channels[self] = None
            self._start("head")

    def connectionLost(self, reason: Any = connectionDone) -> None:
        self._drop_timer()
        self.factory.channels.pop(self, None)
        self.factory.connections -= 1
        super().connectionLost(reason)

    def shed(self) -> None:
        """
        Close this incomplete connection to make room for others.
        """
        self._closing = True
        self._drop_timer()
        self.factory.channels.pop(self, None)
        if self.transport is not None:
            cast(Any, self.transport).abortConnection()

    def _start(self, phase: str) -> None:
        """
        Give the connection until now plus the phase's limit.  One timer a connection, armed lazily: moving the
        deadline later (the next phase, or the next request on a kept-alive connection) only writes down the
        new time, which the timer reads when it fires; only a sooner deadline moves the timer.  A plain request
        then costs no timer calls at all, where a timer per phase cost a callLater and a cancel each.
        """
        self._phase = phase
        site = self.factory
        reactor = site.reactor
        limit = site.headers_deadline if phase == "head" else site.body_deadline
        at = reactor.seconds() + limit
        self._deadline_at = at
        timer = self._deadline
        if timer is None:
            self._deadline = reactor.callLater(limit, self._check)
        elif timer.getTime() > at:
            timer.reset(limit)

    def _stop(self) -> None:
        """No deadline until the next phase starts (the timer, if it fires meanwhile, lapses)."""
        self._deadline_at = None

    def _drop_timer(self) -> None:
        self._deadline_at = None
        timer, self._deadline = self._deadline, None
        if timer is not None and timer.active():
            timer.cancel()

    def _check(self) -> None:
        self._deadline = None
        at = self._deadline_at
        if at is None:
            return
        reactor = self.factory.reactor
        left = at - reactor.seconds()
        if left > 1e-6:  # the deadline moved on since the timer was armed
            self._deadline = reactor.callLater(left, self._check)
            return
        self._deadline_at = None
        self._expired()

    def _expired(self) -> None:
        if self._phase == "head" and not self._got_bytes:
            # Idle (a kept-alive connection, or one that never spoke): close it quietly.
            self._closing = True
            self.factory.channels.pop(self, None)
            self.loseConnection()
            self._abort_later()
            return
        what = "headers" if self._phase == "head" else "body"
        limit = self.factory.headers_deadline if self._phase == "head" else self.factory.body_deadline
        self._refuse(b"408 Request Timeout", f"the request's {what} did not arrive within {limit:g} s")

    def _refuse(self, status: bytes, message: str) -> None:
        self.refuse_body(status, json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                       "param": None, "code": None}}).encode())

    def refuse_body(self, status: bytes, body: bytes, headers: bytes = b"") -> None:
        """
        Answer C{status} with the JSON C{body} and close: the rest of what the client sends is not read.
        """
        if self._closing:
            return
        self._closing = True
        self._drop_timer()
        self.factory.channels.pop(self, None)
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close"
                                 b"\r\n" + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                                 + body)
            # Stop reading at once: a 100 MB upload is not read to its end before the answer.
            stop_reading = getattr(self.transport, "stopReading", None)
            if stop_reading is not None:
                stop_reading()
        self.dataReceived = lambda data: None  # type: ignore[method-assign]
        self.loseConnection()
        self._abort_later()

    def _abort_later(self) -> None:
        # A client that reads nothing would keep the connection in its closing state; a few seconds, then cut.
        transport: Any = self.transport
        if transport is not None:
            self.factory.reactor.callLater(5.0, lambda: transport.abortConnection() if transport.connected else None)


def raise_descriptor_limit() -> tuple[int, int]:
    """
    Raise this process's soft limit on open files to its hard limit (systemd often leaves it at 1,024, which
    a gateway holding a client and an upstream socket per stream exhausts at 500 streams).  Returns the soft
    limit now in force and the one before.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        log.warn("could not raise the open-files limit from {soft} to {target}: {error}", soft=soft, target=target,
                 error=e)
        return soft, soft
    return target, soft


def connection_budget(soft_limit: int) -> int:
    """
    How many client connections to hold before shedding incomplete ones: each may need an upstream socket
    too, and the process needs some descriptors of its own (logs, the database, listening sockets).
    """
    return max((soft_limit - 64) // 2, 16)
