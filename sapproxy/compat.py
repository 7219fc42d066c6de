"""
Every reach into a private name of Twisted, Klein or treq, in one place, each pinned by
C{tests/test_compat.py} so an upgrade that moves one fails a test instead of a request.

Each is used because the public API has no way to do the same thing:

  - twisted.web's HTTP/1.1 client protocol and factory, to subclass them (L{sapproxy.upstreams.http}: no
    reference cycle after a response; no log line per connection), and the pool's factory attribute to install
    them;
  - the request-generation and transmission failures of twisted.web's client, to tell a stale pooled
    connection (retry once) from other failures (L{sapproxy.dispatch.forward});
  - the path of a request whose body is still arriving (its channel has it before the request exists), to
    answer a 413 in the dialect of the route;
  - whether a request's client has gone (Klein cancels the route's Deferred either way);
  - Klein's per-request component cache, released when a request finishes (a reference cycle otherwise);
  - Klein's error handlers, a route's segment count and a L{klein.Response}'s application to a request, for
    the fixed-path dispatch of L{sapproxy.web.routing} (Klein's own C{render}, minus the URL map's binding and
    matching);
  - treq's synchronous body producer, for an in-memory treq client that needs no cooperator
    (L{sapproxy.testing});
  - twisted.web's chunked body decoder, to subclass it, and the client parser's table of body decoders, to
    give one request's parser the subclass (L{sapproxy.upstreams.chunked}: whole chunks cut out of a read in
    one loop);
  - the table of a L{Headers}, to make the same headers for every inference call of a token from one checked
    copy (L{sapproxy.upstreams.sap_aicore.upstream_headers}) instead of encoding and checking them each time;
  - twisted.web's client request, to subclass it with one that writes a body already in memory together with
    its head (L{sapproxy.upstreams.http}: an inference call without the body producer machinery).
"""

from __future__ import annotations

from typing import Any

from treq.testing import _SynchronousProducer as SynchronousBodyProducer
from twisted.web._newclient import HTTP11ClientProtocol, RequestGenerationFailed, RequestTransmissionFailed
from twisted.web._newclient import Request as HTTP11Request
from twisted.web.client import _HTTP11ClientFactory as HTTP11ClientFactory
from twisted.web.http import _ChunkedTransferDecoder as ChunkedTransferDecoder
from twisted.web.http_headers import Headers

__all__ = [
    "ChunkedTransferDecoder", "use_transfer_decoders", "HTTP11ClientFactory", "HTTP11ClientProtocol", "HTTP11Request", "RequestGenerationFailed", "RequestTransmissionFailed",
    "SynchronousBodyProducer", "channel_path", "client_disconnected", "forget_klein_component", "headers_like",
    "install_pool_factory", "klein_apply_response", "klein_error_handlers", "klein_segment_count",
]


def headers_like(checked: Headers) -> Headers:
    """
    A new L{Headers} with the same headers as C{checked}, made without encoding or checking them again (which
    L{Headers.copy} does); its value lists are its own, so adding to them leaves C{checked} as it is.
    """
    headers = Headers()
    headers._rawHeaders = {name: list(values) for name, values in checked._rawHeaders.items()}
    return headers


def install_pool_factory(pool: Any, factory: type[HTTP11ClientFactory]) -> None:
    """
    Make C{pool} build its connections' protocols with C{factory}.
    """
    pool._factory = factory


def use_transfer_decoders(protocol: HTTP11ClientProtocol, request: Any,
                          decoders: dict[bytes, type[ChunkedTransferDecoder]]) -> None:
    """
    Make the response parser that C{protocol} has just made for C{request} decode bodies with C{decoders}
    (by Transfer-Encoding); a protocol that refused the request (and so made no parser for it) is left alone.
    """
    parser = protocol._parser
    if parser is not None and parser.request is request:
        parser._transferDecoders = decoders


def channel_path(channel: Any) -> bytes:
    """
    The path of the request a channel is receiving (known from the request line, before the body).
    """
    return getattr(channel, "_path", b"") or b""


def channel_method(channel: Any) -> bytes:
    """
    The method of the request a channel is receiving (known from the request line, before the body).
    """
    return getattr(channel, "_command", b"") or b""


def client_disconnected(request: Any) -> bool:
    """
    Whether the client of C{request} has gone away.
    """
    return bool(getattr(request, "_disconnected", False))


def forget_klein_component(request: Any) -> None:
    """
    Drop Klein's per-request component cache (its URL map adapter), which closes a reference cycle.
    """
    request._adapterCache = {}


def klein_error_handlers(app: Any) -> list[Any]:
    """
    C{app}'s error handlers, in the order Klein tries them: C{(exception types, handler)} pairs.
    """
    return app._error_handlers


def klein_segment_count(handler: Any) -> int | None:
    """
    How many path segments the route of C{handler} (an entry of C{Klein.endpoints}) consumes, which Klein
    moves from the request's C{postpath} to its C{prepath}; L{None} if Klein did not say.
    """
    count = getattr(handler, "segment_count", None)
    return count if isinstance(count, int) else None


def klein_apply_response(response: Any, request: Any) -> Any:
    """
    Apply a route's L{klein.Response} to C{request}, as Klein's resource does: what is left to render.
    """
    return response._applyToRequest(request)


def twistd_log_options() -> tuple[str, bool] | None:
    """
    C{(--logfile, --nodaemon)} as twistd parsed them, when a twistd L{AppLogger} is on the call stack (it calls
    a C{--logger} factory from its C{start}); L{None} otherwise.  twistd hands the factory nothing, and
    C{--logger} replaces twistd's own choice of file, so a factory that honours C{--logfile} reads them here.
    """
    import sys

    from twisted.application.app import AppLogger

    frame: Any = sys._getframe(1)
    for _ in range(10):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, AppLogger):
            return str(getattr(candidate, "_logfilename", "") or ""), bool(getattr(candidate, "_nodaemon", True))
        frame = frame.f_back
    return None
