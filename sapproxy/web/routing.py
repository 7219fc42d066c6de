"""
Klein's resource, with the route of a fixed path found by one dictionary look-up.

Klein's C{render} works out, for every request, the URL's parts (host, port, scheme, script name), binds
werkzeug's URL map to them, adapts the request to a Klein request to hold the bound map, and walks the map's
state machine to match the path: about a tenth of the CPU a plain API request costs the gateway (callgrind,
bench/plain_cost.py).  Every API route of the gateway is a fixed path, so the rule of a (method, path) pair is
known before any request comes: L{StaticRoutes} finds it in a dictionary and runs the endpoint exactly as
Klein would (same endpoint call, same cancellation when the client leaves, same error handlers, same way of
writing the result).  Anything else (a path with variables, a trailing-slash redirect, a 404, a 405, a
resource not at the site's root) goes through Klein's own C{render}, unchanged.

What the fast path does not do: bind the URL map to the request (Klein's C{url_for} and branch routes read
it; the gateway uses neither, so the tables below skip branch routes' rules).
"""

from __future__ import annotations

from typing import Any

from klein import Klein, Response
from klein.resource import KleinResource
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.python import log
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRenderable
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.template import renderElement
from werkzeug.exceptions import HTTPException

from sapproxy.compat import klein_apply_response, klein_error_handlers, klein_segment_count


class _StandIn:
    """Rendered elsewhere (a resource, an element): nothing left to write."""


_STAND_IN = _StandIn()


def _utf8(v: str | bytes) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else v


def static_table(app: Klein) -> dict[tuple[bytes, bytes], tuple[str, int]]:
    """
    C{(method, path) -> (endpoint, segment count)} for every rule of C{app} that matches one fixed path
    (no variables, no host or subdomain); a (method, path) pair two rules claim is left to werkzeug.
    """
    table: dict[tuple[bytes, bytes], tuple[str, int]] = {}
    taken: set[tuple[bytes, bytes]] = set()
    for rule in app.url_map.iter_rules():
        if rule.arguments or rule.host or rule.subdomain or not rule.methods or rule.endpoint.endswith("_branch"):
            continue
        if rule.build_only or rule.redirect_to is not None or rule.defaults:
            continue
        path = rule.rule.encode("utf-8")
        handler = app.endpoints.get(rule.endpoint)
        if handler is None:
            continue
        segments = klein_segment_count(handler)
        if segments is None:
            continue
        for method in rule.methods:
            key = (method.encode("ascii"), path)
            if key in taken:
                table.pop(key, None)
                continue
            taken.add(key)
            table[key] = (rule.endpoint, segments)
    return table


class StaticRoutes(KleinResource):
    """
    L{KleinResource} with fixed-path routes dispatched from a table (see the module's docstring).
    """

    def __init__(self, app: Klein) -> None:
        super().__init__(app)
        self._table = static_table(app)

    def render(self, request: Any) -> Any:
        postpath = request.postpath
        hit = None
        if not request.prepath:
            hit = self._table.get((request.method, b"/" + b"/".join(postpath)))
        if hit is None:
            return super().render(request)
        endpoint, segment_count = hit
        request.prepath.extend(postpath[:segment_count])
        request.postpath = postpath[segment_count:]
        rendering = _Rendering(self._app, request)
        # Klein's order: the "finished" flag is set before the endpoint's Deferred is cancelled.
        done = request.notifyFinish()
        d: Deferred[Any] = maybeDeferred(self._app.execute_endpoint, endpoint, request)
        done.addCallbacks(rendering.finished, rendering.lost, errbackArgs=(d,))
        d.addCallback(rendering.process)
        d.addErrback(rendering.processing_failed, klein_error_handlers(self._app))
        d.addCallback(rendering.write_response)
        d.addErrback(log.err, _why="Unhandled Error writing response")
        return server.NOT_DONE_YET


class _Rendering:
    """
    One request's way through L{StaticRoutes.render}: Klein's callbacks, as methods of an object that nothing
    it holds points back to.

    Klein's render (and this module's first version of it) made them closures, and the error handler's closure
    named itself to recurse over the handlers: a function and its cell, a reference cycle holding the request
    with its headers, addresses and outline, so every finished request waited for the cyclic collector.  With
    64 requests in flight most of a young collection's objects were still alive and moved on to the middle
    generation, whose collections then looked at tens of thousands of objects: the garbage collector's work per
    request grew with concurrency (bench/plain_cost.py --turns: gc time per request at c=64 about 13x c=1's).
    Without the cycle a finished request is freed by its reference count, and young collections come about
    once per several hundred requests instead of once per ~150.
    """

    __slots__ = ("app", "request", "request_finished")

    def __init__(self, app: Klein, request: Any) -> None:
        self.app = app
        self.request = request
        self.request_finished = False

    def finished(self, result: object) -> None:
        self.request_finished = True

    def lost(self, failure: Failure, d: Deferred[Any]) -> None:
        self.request_finished = True
        d.cancel()

    def process(self, r: object) -> Any:
        request = self.request
        if isinstance(r, Response):
            r = klein_apply_response(r, request)
        if IResource.providedBy(r):
            request.render(getChildForRequest(r, request))
            return _STAND_IN
        if IRenderable.providedBy(r):
            renderElement(request, r)
            return _STAND_IN
        return r

    def processing_failed(self, failure: Failure, error_handlers: list[Any]) -> Deferred[Any] | None:
        if self.request_finished:
            if not failure.check(CancelledError):
                log.err(failure, "Unhandled Error Processing Request.")
            return None
        request = self.request
        for i, (exceptions, handler_func) in enumerate(error_handlers):
            if failure.check(*exceptions):
                handled = maybeDeferred(self.app.execute_error_handler, handler_func, request, failure)
                handled.addCallback(self.process)
                return handled.addErrback(self.processing_failed, error_handlers[i + 1:])
        if failure.check(HTTPException):
            he: Any = failure.value
            request.setResponseCode(he.code)
            resp = he.get_response({})
            for header, value in resp.headers:
                request.setHeader(_utf8(header), _utf8(value))
            return succeed(_utf8(b"".join(resp.iter_encoded())))
        request.processingFailed(failure)
        return None

    def write_response(self, r: Any) -> None:
        if r is _STAND_IN:
            return
        request = self.request
        if isinstance(r, str):
            r = r.encode("utf-8")
        if isinstance(r, bytes):
            request.write(r)
        if not self.request_finished:
            request.finish()
