"""
Each private name of Twisted, Klein or treq that L{sapproxy.compat} reaches for is still there and means what
it did: an upgrade that moves one fails here, not in a request.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import HTTPConnectionPool
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from sapproxy import compat


def test_pool_factory_is_installed_and_used() -> None:
    pool = HTTPConnectionPool(MemoryReactorClock())

    class Factory(compat.HTTP11ClientFactory):
        pass

    compat.install_pool_factory(pool, Factory)
    assert pool._factory is Factory
    protocol = Factory(lambda _: None, repr).buildProtocol(None)
    assert isinstance(protocol, compat.HTTP11ClientProtocol)


def test_client_failures_are_the_client_protocols_own() -> None:
    from twisted.web import _newclient

    assert compat.RequestGenerationFailed is _newclient.RequestGenerationFailed
    assert compat.RequestTransmissionFailed is _newclient.RequestTransmissionFailed
    assert issubclass(compat.RequestTransmissionFailed, _newclient._WrapperException)


def test_channel_path_before_the_request_exists() -> None:
    from twisted.internet.testing import StringTransport
    from twisted.web.http import HTTPChannel

    channel = HTTPChannel()
    channel.makeConnection(StringTransport())
    channel.lineReceived(b"POST /v1/messages HTTP/1.1")
    assert compat.channel_path(channel) == b"/v1/messages"
    assert compat.channel_path(object()) == b""
    assert compat.channel_method(channel) == b"POST"
    assert compat.channel_method(object()) == b""


def test_client_disconnected_follows_the_connection() -> None:
    request = Request(DummyChannel())
    assert not compat.client_disconnected(request)
    request.connectionLost(Exception("gone"))
    assert compat.client_disconnected(request)


def test_klein_component_cache_is_what_forget_clears() -> None:
    app = Klein()

    @app.route("/")
    def root(request: Request) -> bytes:
        return b"ok"

    client = StubTreq(app.resource())
    seen = []
    original = Request.finish

    def finish(self: Request) -> None:
        seen.append(dict(self._adapterCache))
        compat.forget_klein_component(self)
        assert self._adapterCache == {}
        original(self)

    Request.finish = finish  # type: ignore[method-assign]
    try:
        response = client.get("http://x/")
        client.flush()
    finally:
        Request.finish = original  # type: ignore[method-assign]
    assert seen and seen[0], "Klein keeps its URL map adapter in the request's component cache"
    assert response.called


def test_synchronous_body_producer_writes_at_once() -> None:
    producer = compat.SynchronousBodyProducer(b"abc")
    written: list[bytes] = []

    class Consumer:
        def write(self, data: bytes) -> None:
            written.append(data)

    d = producer.startProducing(Consumer())
    assert d.called and written == [b"abc"]


def test_chunked_decoder_and_the_parsers_decoder_table() -> None:
    from twisted.internet.testing import StringTransport
    from twisted.web import _newclient, http
    from twisted.web.http_headers import Headers

    assert compat.ChunkedTransferDecoder is http._ChunkedTransferDecoder
    decoder = compat.ChunkedTransferDecoder(lambda _: None, lambda _: None)
    assert decoder.state == "CHUNK_LENGTH" and decoder._buffer == bytearray()  # what the subclass reads
    assert _newclient.HTTPClientParser._transferDecoders == {b"chunked": http._ChunkedTransferDecoder}

    class Mine(compat.ChunkedTransferDecoder):
        pass

    protocol = compat.HTTP11ClientProtocol()
    protocol.makeConnection(StringTransport())
    request = _newclient.Request(b"GET", b"/", Headers({b"host": [b"example"]}), None)
    protocol.request(request)
    compat.use_transfer_decoders(protocol, request, {b"chunked": Mine})
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert type(protocol._parser.bodyDecoder) is Mine
    other = _newclient.Request(b"GET", b"/", Headers({b"host": [b"example"]}), None)
    compat.use_transfer_decoders(protocol, other, {})  # not this parser's request: left alone
    assert protocol._parser._transferDecoders == {b"chunked": Mine}


def test_twistd_log_options_from_the_app_logger_calling_the_factory() -> None:
    from twisted.scripts._twistd_unix import UnixAppLogger

    def factory_called_by(logger: Any) -> Any:
        self = logger  # noqa: F841 -- as in AppLogger.start, the caller's frame holds the logger as self
        return compat.twistd_log_options()

    options = {"logfile": "/var/log/gw.json", "nodaemon": False, "syslog": False, "prefix": "twisted"}
    assert factory_called_by(UnixAppLogger(options)) == ("/var/log/gw.json", False)
    assert factory_called_by(UnixAppLogger({**options, "logfile": "", "nodaemon": True})) == ("", True)
    assert compat.twistd_log_options() is None


def test_klein_error_handlers_segment_counts_and_responses() -> None:
    from klein import Response

    app = Klein()

    @app.route("/v1/chat/completions", methods=["POST"])
    def chat(request: Request) -> bytes:
        return b"ok"

    @app.handle_errors(ValueError)
    def bad(request: Request, failure: Any) -> bytes:
        return b"bad"

    handlers = compat.klein_error_handlers(app)
    assert [types for types, _ in handlers] == [[ValueError]]
    assert app.execute_error_handler(handlers[0][1], None, None) == b"bad"  # type: ignore[arg-type]
    rule = next(r for r in app.url_map.iter_rules() if r.rule == "/v1/chat/completions")
    assert compat.klein_segment_count(app.endpoints[rule.endpoint]) == 3
    assert compat.klein_segment_count(object()) is None

    request = Request(DummyChannel())
    body = compat.klein_apply_response(Response(code=201, headers={"x-a": "1"}, body=b"made"), request)
    assert body == b"made"
    assert request.code == 201 and request.responseHeaders.getRawHeaders(b"x-a") == [b"1"]


def test_headers_like_copies_the_table_and_owns_its_lists() -> None:
    from twisted.web.http_headers import Headers

    checked = Headers({b"authorization": [b"Bearer t"], b"content-type": [b"application/json"]})
    copy = compat.headers_like(checked)
    assert copy == checked and list(copy.getAllRawHeaders()) == list(checked.getAllRawHeaders())
    assert copy.getRawHeaders(b"Authorization") == [b"Bearer t"], "names kept in the case Headers looks them up in"
    copy.addRawHeader(b"authorization", b"more")
    copy.setRawHeaders(b"x-extra", [b"1"])
    assert checked.getRawHeaders(b"authorization") == [b"Bearer t"] and not checked.hasHeader(b"x-extra")


def test_http11_request_is_the_client_protocols_own() -> None:
    from twisted.web import _newclient

    assert compat.HTTP11Request is _newclient.Request
    request = compat.HTTP11Request(b"POST", b"/x", None, None)
    assert (request.method, request.uri, request.bodyProducer, request._parsedURI) == (b"POST", b"/x", None, None)
    assert callable(request.writeTo) and callable(request.stopWriting)
