"""
A finished response is sent at once (L{sapproxy.site.TrackingRequest.finish}), not on the reactor's next turn:
over a real TCP connection, kept-alive requests, a response larger than the socket's buffer (sent partly now,
the rest by the reactor) and a closing connection all arrive whole.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource

from sapproxy.site import GatewaySite

#: Larger than a loopback socket's buffer: part of it waits for the reactor.  Made per use, never kept (other
#: tests look for big strings left alive).
BIG_SIZE = 8 * 1024 * 1024


class Answer(Resource):
    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        body = request.content.read()
        if body == b"big":
            return b"x" * BIG_SIZE
        return b"echo " + body


@pytest_twisted.ensureDeferred
async def test_responses_arrive_whole_on_kept_alive_and_closing_connections() -> None:
    site = GatewaySite(Answer(), max_body_bytes=1000, reactor=reactor)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    pool = HTTPConnectionPool(reactor, persistent=True)
    http = treq.client.HTTPClient(Agent(reactor, pool=pool))
    url = f"http://127.0.0.1:{port.getHost().port}/"
    try:
        for i in range(3):
            response = await http.post(url, data=b"%d" % i)
            assert response.code == 200 and await response.content() == b"echo %d" % i
        assert site.connections == 1  # one kept-alive connection served them all
        response = await http.post(url, data=b"big")
        big = await response.content()
        assert len(big) == BIG_SIZE and big.count(b"x") == BIG_SIZE
        del big, response
        response = await http.post(url, data=b"last", headers={"Connection": "close"})
        assert await response.content() == b"echo last"
    finally:
        await pool.closeCachedConnections()
        await port.stopListening()
