"""
An upstream request leaves at once (L{sapproxy.upstreams.http.send_now}): on a plain TCP connection its bytes
are on the socket when C{writeTo} returns, not at the end of the reactor's turn, so requests read in one turn
do not go upstream (and come back) as one batch while the gateway idles.
"""

from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.http_headers import Headers

from sapproxy.upstreams.http import _Origin, _WholeRequest

BODY = b'{"messages":[{"role":"user","content":"hi"}]}'


class NoEndpoints:
    def endpointForURI(self, uri: Any) -> None:
        return None


def request(body: bytes = BODY) -> _WholeRequest:
    origin = _Origin(b"http://upstream.example:8080/v2/inference/deployments/d1/chat/completions", NoEndpoints(), True)
    return _WholeRequest(origin, Headers({b"authorization": [b"Bearer t"]}), body, True)


@pytest.fixture
def pair() -> Iterator[tuple[tcp.Connection, socket.socket, MemoryReactorClock]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    reactor = MemoryReactorClock()
    connection = tcp.Connection(ours, Protocol(), reactor)
    connection.connected = True
    try:
        yield connection, theirs, reactor
    finally:
        ours.close()
        theirs.close()


def test_the_request_is_on_the_socket_when_written(pair: tuple[tcp.Connection, socket.socket, Any]) -> None:
    connection, theirs, reactor = pair
    request().writeTo(connection)
    sent = theirs.recv(1 << 16)  # no reactor turn in between: a buffered write would raise BlockingIOError
    assert sent == (b"POST /v2/inference/deployments/d1/chat/completions HTTP/1.1\r\n"
                     b"Host: upstream.example:8080\r\nContent-Length: %d\r\nAuthorization: Bearer t\r\n\r\n"
                     % len(BODY) + BODY)
    assert connection not in reactor.getWriters()  # nothing left for the reactor to send


def test_a_closing_connection_is_left_to_the_reactor(pair: tuple[tcp.Connection, socket.socket, Any]) -> None:
    connection, theirs, reactor = pair
    connection.disconnecting = True
    request().writeTo(connection)
    with pytest.raises(BlockingIOError):
        theirs.recv(1 << 16)
    assert connection in reactor.getWriters()


def test_a_transport_not_a_socket_of_its_own_is_written_as_before() -> None:
    transport = StringTransport()  # as TLS: its bytes go through the TLS layer, which the reactor drives
    request().writeTo(transport)
    assert transport.value().endswith(b"\r\n\r\n" + BODY)
