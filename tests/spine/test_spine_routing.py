"""
The fixed-path dispatch (L{sapproxy.web.routing.StaticRoutes}) answers every request exactly as Klein's own
resource does: same status, headers and body for fixed paths, paths with variables, 404, 405, HEAD,
trailing-slash redirects, error handlers, L{klein.Response} and resources returned by a route; and it
cancels a route whose client left.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from klein import Klein, Response
from klein.resource import KleinResource
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from sapproxy.web.routing import StaticRoutes, static_table


class _Leaf(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"leaf " + b"/".join(request.prepath) + b" | " + b"/".join(request.postpath)


def _app() -> Klein:
    app = Klein()

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat(request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return b'{"ok":true,"body":' + request.content.read() + b"}"

    @app.route("/v1/models", methods=["GET"])
    def models(request: Any) -> str:
        return "models " + "/".join(p.decode() for p in request.prepath) + "|" + repr(request.postpath)

    @app.route("/v1/models/<name>", methods=["GET"])
    def model(request: Any, name: str) -> str:
        return "model " + name

    @app.route("/admin/", methods=["GET"])
    def admin(request: Any) -> bytes:
        return b"admin"

    @app.route("/boom", methods=["GET"])
    def boom(request: Any) -> bytes:
        raise ValueError("boom")

    @app.route("/kaboom", methods=["GET"])
    def kaboom(request: Any) -> bytes:
        raise KeyError("kaboom")

    @app.route("/made", methods=["POST"])
    def made(request: Any) -> Response:
        return Response(code=201, headers={"x-made": "yes"}, body=b"made")

    @app.route("/leaf", methods=["GET"], branch=True)
    def leaf(request: Any) -> Resource:
        return _Leaf()

    @app.handle_errors(ValueError)
    def bad(request: Any, failure: Any) -> bytes:
        request.setResponseCode(418)
        return b"handled " + str(failure.value).encode()

    return app


CASES = [
    ("POST", "/v1/chat/completions", b'{"a":1}'),
    ("GET", "/v1/chat/completions", None),
    ("POST", "/v1/chat/completions/", b"{}"),
    ("POST", "/v1//chat/completions", b"{}"),
    ("POST", "/v1/chat%2Fcompletions", b"{}"),
    ("POST", "/v1/chat/completions?x=1", b"{}"),
    ("GET", "/v1/models", None),
    ("HEAD", "/v1/models", None),
    ("GET", "/v1/models/gpt-4.1", None),
    ("GET", "/admin/", None),
    ("GET", "/admin", None),
    ("GET", "/nowhere", None),
    ("GET", "/boom", None),
    ("GET", "/kaboom", None),
    ("POST", "/made", b""),
    ("GET", "/leaf", None),
    ("GET", "/leaf/a/b", None),
]


def _seen(resource: Any, method: str, path: str, body: bytes | None) -> tuple[int, dict[bytes, list[bytes]], bytes]:
    client = StubTreq(resource)
    d = client.request(method, "http://gw.example" + path, data=body, allow_redirects=False)
    client.flush()
    response = d.result
    content = client.content(response)
    client.flush()
    headers = {k.lower(): v for k, v in response.headers.getAllRawHeaders() if k.lower() != b"date"}
    return response.code, headers, content.result


@pytest.mark.parametrize("method,path,body", CASES)
def test_same_answers_as_klein(method: str, path: str, body: bytes | None) -> None:
    app = _app()
    assert _seen(StaticRoutes(app), method, path, body) == _seen(KleinResource(app), method, path, body)


def test_fixed_paths_skip_the_url_map() -> None:
    app = _app()
    table = static_table(app)
    assert set(table) >= {(b"POST", b"/v1/chat/completions"), (b"GET", b"/v1/models"), (b"HEAD", b"/v1/models"),
                          (b"GET", b"/admin/"), (b"POST", b"/made")}
    assert not any(b"<" in path for _, path in table)
    assert not any(endpoint.endswith("_branch") for endpoint, _ in table.values())  # a branch's rest: werkzeug's
    bound = []
    original = app.url_map.bind

    def bind(*a: Any, **kw: Any) -> Any:
        bound.append(kw.get("path_info"))
        return original(*a, **kw)

    app.url_map.bind = bind  # type: ignore[method-assign]
    resource = StaticRoutes(app)
    assert _seen(resource, "POST", "/v1/chat/completions", b"{}")[0] == 200
    assert _seen(resource, "GET", "/v1/models/x", None)[0] == 200
    assert bound == ["/v1/models/x"]


def test_a_route_whose_client_left_is_cancelled() -> None:
    app = Klein()
    pending: Deferred[bytes] = Deferred()
    cancelled = []
    pending.addErrback(lambda f: cancelled.append(f.check(CancelledError)))

    @app.route("/wait", methods=["POST"])
    async def wait(request: Any) -> bytes:
        return await pending

    request = DummyRequest([b"wait"])
    request.method = b"POST"
    request.path = b"/wait"
    StaticRoutes(app).render(request)
    assert not cancelled
    request.processingFailed(Exception("client gone"))  # DummyRequest: errbacks notifyFinish, like a lost client
    assert cancelled == [CancelledError]


@pytest.mark.parametrize("path", [b"made", b"boom", b"kaboom"])
def test_a_finished_request_is_freed_by_its_reference_count(path: bytes) -> None:
    """
    Once answered (by the endpoint, by an error handler, or as an unhandled error), nothing the fast path
    made keeps the request alive: no reference cycle leaves it, with its headers and buffers, for the cyclic
    collector, whose young collections then find nothing to free however many requests are in flight.
    """
    app = _app()
    resource = StaticRoutes(app)
    request = DummyRequest([path])
    request.method = b"POST" if path == b"made" else b"GET"
    request.path = b"/" + path
    gone = weakref.ref(request)
    gc.disable()
    try:
        resource.render(request)
        if path == b"kaboom":  # unhandled: DummyRequest.processingFailed errbacks notifyFinish, writes nothing
            assert not request.finished and request.written == []
        else:
            assert request.finished and request.responseCode == {b"made": 201, b"boom": 418}[path]
        del request
        assert gone() is None
    finally:
        gc.enable()
