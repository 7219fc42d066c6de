"""
The HTTP site: requests that are tracked until they finish (so shutdown can wait for them) and whose bodies
are capped, and the listening port, opened only once the gateway can judge callers.
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.tcp import Connection, makeBinding
from twisted.logger import Logger
from twisted.web import http
from twisted.web.server import Request, Site

from sapproxy import __version__
from sapproxy.config import GatewayConfig
from sapproxy.edge import Outline
from sapproxy.compat import channel_method, channel_path, client_disconnected, forget_klein_component
from sapproxy.errors import GatewayError
from sapproxy.registry import client_api_for
from sapproxy.web.budget import BIG_BODY, NO_BODY, RETRY_AFTER, BodyBudget
from sapproxy.web.channel import GatewayChannel
from sapproxy.web.reasons import PhrasedRequest
from sapproxy.web.requestlog import request_done

log = Logger()


class TrackingRequest(PhrasedRequest):
    """
    A request the site remembers until it finishes, so shutdown can wait for it; and whose body, when larger
    than the site's limit, is never stored (decided from Content-Length before reading, when it is given).

    @ivar body_too_large: the size that broke the limit, or L{None}.
    """

    body_too_large: int | None = None
    #: Set by an API route's frame, which logs and counts the request itself (with model, key and tokens).
    accounted: bool = False
    #: The body's outline for L{sapproxy.edge.parse_body}, gathered chunk by chunk.
    body_outline: Outline | None = None
    #: The bytes this request's body took from the site's L{BodyBudget} (a big body's), given back at its end.
    body_reserved: int = 0
    _budget: BodyBudget

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        # JSON APIs only: never parse form uploads into request.args (nor, for that, every POST's
        # Content-Type through the email package, 7-9 % of a request's CPU in the profile).
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)

    def gotLength(self, length: int | None) -> None:
        channel: Any = self.channel
        limit = channel.site.max_body_bytes
        if length is not None and length > limit:
            # Twisted dispatches a request only after its whole body; answer now and hang up instead.
            self._refuse_too_large(length, "")
        elif length is not None and length >= BIG_BODY and not self._take_budget(length):
            return
        else:
            super().gotLength(length)

    def _take_budget(self, size: int) -> bool:
        """
        Take C{size} more bytes of the site's budget for big bodies, or refuse the request (503 or 413, see
        L{sapproxy.web.budget}) and say so.
        """
        channel: Any = self.channel
        budget: BodyBudget = channel.site.body_budget
        refused = budget.take(size)
        if not refused:
            self.body_reserved += size
            self._budget = budget  # the channel may be gone by the time the bytes are given back
            return True
        self.give_back_budget()
        self.body_too_large = self.body_reserved + size
        self.content = NO_BODY
        if refused == 413:
            error = GatewayError("request_too_large", f"request body of {self.body_too_large} bytes exceeds the "
                                 f"gateway's budget for big bodies of {budget.limit} bytes")
            self._refuse(413, b"413 Payload Too Large", error)
        else:
            error = GatewayError("overloaded", "the gateway is handling as many big request bodies as it holds "
                                 f"at once ({budget.limit} bytes); retry after {RETRY_AFTER} s",
                                 retry_after=RETRY_AFTER)
            self._refuse(503, b"503 Service Unavailable", error, b"Retry-After: %d\r\n" % RETRY_AFTER)
        return False

    def give_back_budget(self) -> None:
        """Give the bytes this request's body took from the budget back (once; at its end, or its refusal)."""
        if self.body_reserved:
            self._budget.give_back(self.body_reserved)
            self.body_reserved = 0

    def _refuse_too_large(self, size: int, qualifier: str) -> None:
        channel: Any = self.channel
        limit = channel.site.max_body_bytes
        self.give_back_budget()
        self.body_too_large = size
        self.content = NO_BODY
        error = GatewayError("request_too_large",
                             f"request body of {qualifier}{size} bytes exceeds the limit of {limit} bytes")
        self._refuse(413, b"413 Payload Too Large", error)

    def _refuse(self, code: int, status: bytes, error: GatewayError, headers: bytes = b"") -> None:
        """Answer C{error} in the client's dialect and hang up, before the body is read."""
        channel: Any = self.channel
        body = json.dumps(client_api_for(channel_path(channel)).error_body(error)).encode()
        path = channel_path(channel)
        method = channel_method(channel).decode("latin-1", "replace")
        request_done(channel.site.metrics, method, path.decode("latin-1", "replace").split("?", 1)[0], code,
                     0.0, (self.requestHeaders.getRawHeaders(b"user-agent") or [b""])[0].decode("latin-1"))
        refuse = getattr(channel, "refuse_body", None)
        if refuse is not None:
            refuse(status, body, headers)
            return
        channel.transport.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n" + headers
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        channel.transport.loseConnection()

    def handleContentChunk(self, data: bytes) -> None:
        content: Any = self.content
        channel: Any = self.channel
        size = content.tell() + len(data)
        if size > channel.site.max_body_bytes and self.body_too_large is None:
            # A chunked upload without Content-Length: answer as soon as it passes the limit, not at its end.
            self._refuse_too_large(size, "more than ")
            return
        if size >= BIG_BODY and size > self.body_reserved and not self._take_budget(size - self.body_reserved):
            return  # a chunked upload grown big takes from the budget as it grows
        content.write(data)
        if self.body_outline is None:
            self.body_outline = Outline()
        self.body_outline.feed(data)  # what the edge checks besides parsing, while the chunks arrive

    def processingFailed(self, reason: Any) -> Any:
        """
        The last resort for an error no route caught: a JSON error in the client's dialect, never twisted.web's
        HTML "Processing Failed" page.
        """
        log.failure("unhandled error processing {path}", reason, path=self.path.decode("latin-1", "replace"))
        if self.finished or client_disconnected(self):
            return reason
        if self.startedWriting:
            # Headers are out: nothing better than ending the response.
            self.finish()
            return reason
        error = GatewayError("api_error", "internal error in the gateway")
        body = json.dumps(client_api_for(self.path).error_body(error)).encode()
        self.setResponseCode(500)
        self.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
        self.responseHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
        self.write(body)
        self.finish()
        return reason

    def finish(self) -> None:
        """
        End the response, and send what it left in the connection's buffer now rather than on the reactor's
        next turn: a plain request costs one turn (an C{epoll_wait} and the loop around it) less, and its
        client gets the answer that much sooner.  Only a plain TCP connection that is staying open (one that
        is closing lets the reactor finish the job, which then closes it); a failed send is left for the
        reactor's own write, which meets the same error and handles it.
        """
        channel = self.channel
        transport = getattr(channel, "transport", None)
        super().finish()
        if isinstance(transport, Connection) and transport.connected and not transport.disconnecting:
            transport.doWrite()

    def process(self) -> None:
        site = cast(Any, self.channel).site
        self.started = site.reactor.seconds()
        site.inflight.add(self)
        self.notifyFinish().addBoth(self._finished, site)
        super().process()

    def connectionLost(self, reason: Any) -> None:
        self.give_back_budget()  # a client gone before its request ended
        super().connectionLost(reason)

    def _finished(self, result: object, site: Any) -> None:
        self.give_back_budget()
        site.inflight.discard(self)
        site.finished += 1
        # Klein's render keeps a self-referencing error handler that closes over the request, so every request
        # ends in a reference cycle only the garbage collector frees; a long stream outlives the young
        # collections and lands in the oldest generation, which is collected rarely (and slowly, once it is
        # large).  Whatever the request still refers to waits there with it: above all its connection, the
        # transport and protocol with their buffers.  Twisted has dropped the channel and the body by now
        # (nothing after this, in Twisted, Klein or the routes, uses the transport), so let go of the
        # connection and of Klein's component (its URL map adapter) too.
        self.transport = None
        forget_klein_component(self)


class GatewaySite(Site):
    requestFactory = TrackingRequest
    displayTracebacks = False

    def __init__(self, resource: Any, *, max_body_bytes: int, reactor: Any, body_budget_bytes: int = 256 << 20,
                 headers_deadline: float = 60.0,
                 body_deadline: float = 300.0, max_connections: int | None = None, **kwargs: Any) -> None:
        # No idle timer of twisted.web's (12 hours by default, reset on every read, cancelled and set again for
        # every request): the channel's own deadlines (L{sapproxy.web.channel}) are shorter and cover idling.
        kwargs.setdefault("timeout", None)
        super().__init__(resource, reactor=reactor, **kwargs)
        self.max_body_bytes = max_body_bytes
        #: Bytes of big request bodies held at once (L{sapproxy.web.budget}).
        self.body_budget = BodyBudget(body_budget_bytes)
        #: Seconds for a request's head, and then for its body, however the bytes are spread
        #: (L{sapproxy.web.channel}).
        self.headers_deadline = headers_deadline
        self.body_deadline = body_deadline
        #: Open client connections past which incomplete ones are shed; L{None}: no limit.
        self.max_connections = max_connections
        #: Connections that have not sent a whole request yet, oldest first.
        self.channels: dict[Any, None] = {}
        self.connections = 0
        self.shed = 0
        #: L{sapproxy.metrics.GatewayMetrics} for the requests no API route accounts for, or L{None}.
        self.metrics: Any = None
        self.inflight: set[Request] = set()
        #: Requests finished since start (for L{sapproxy.memory.IdleCollector}).
        self.finished = 0
        self.noisy = False

    def log(self, request: http.Request) -> None:
        # An API request gets its structured line from the accounting; every other one (404, 405, the
        # operator pages) gets its line here, instead of a combined-log line.
        if getattr(request, "accounted", False):
            return
        started = getattr(request, "started", None)
        latency = self.reactor.seconds() - started if started is not None else 0.0
        request_done(self.metrics, request.method.decode("latin-1", "replace"),
                     request.path.decode("latin-1", "replace"), request.code, latency,
                     (request.getHeader(b"user-agent") or b"").decode("latin-1"))

    def protocol(self) -> Any:  # type: ignore[override]
        return http._GenericHTTPChannelProtocol(GatewayChannel())  # type: ignore[attr-defined]

    def buildProtocol(self, addr: Any) -> Any:
        if self.max_connections is not None and self.connections >= self.max_connections and self.channels:
            # Descriptors are running short: make room by closing the oldest connection that has not sent a
            # whole request yet (a slow-header client), never one whose request is under way.
            oldest = next(iter(self.channels))
            oldest.shed()
            self.shed += 1
            if self.metrics is not None:
                self.metrics.connection_shed()
            if self.shed == 1 or self.shed % 1000 == 0:
                log.warn("{n} incomplete client connections closed so far to keep room for others (open "
                         "connections at the budget of {budget})", n=self.shed, budget=self.max_connections)
        return super().buildProtocol(addr)


class Listener(Service):
    def __init__(self, reactor: Any, config: GatewayConfig, site: GatewaySite, reuse_port: bool = False) -> None:
        self._reactor = reactor
        self._config = config
        self._site = site
        self._reuse_port = reuse_port
        self.port: Any = None

    def startService(self) -> None:
        # Listening starts in listen(), once the gateway is ready to judge credentials.
        super().startService()

    def listen(self) -> None:
        if not self.running or self.port is not None:
            return
        host, port = self._config.host, self._config.port
        where: Any = makeBinding(host, port, reuseAddress=True, reusePort=True) if self._reuse_port else port
        self.port = self._reactor.listenTCP(where, self._site, backlog=1024, interface=host)
        address = self.port.getHost()
        log.info("sapproxy {version} listening on http://{host}:{port}", version=__version__, host=address.host,
                 port=address.port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is None:
            return None
        d = self.port.stopListening()
        self.port = None
        return d
