"""
The floor: the least a Klein + treq gateway can do.  One shared HTTPConnectionPool, ``unbuffered=True``, no
auth, no accounting, no metrics, no retries.

POST /v1/chat/completions is forwarded to ``{upstream}/v1/chat/completions``:
  - non-stream: the upstream body is returned as is;
  - ``"stream": true``: each SSE event is parsed as JSON and re-serialised (the minimum any translating
    gateway does per event), written to the client as it arrives, with backpressure (the client's request
    pauses the upstream transport).

    python bench/bare_passthrough.py --port 3198 --upstream http://127.0.0.1:3199
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from klein import Klein
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.server import Site
from zope.interface import implementer

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-token"}


@implementer(IPushProducer)
class SSERelay(Protocol):
    def __init__(self, request: Any) -> None:
        self.request = request
        self.buf = b""
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.request.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:
        buf = self.buf + data
        parts = buf.split(b"\n\n")
        self.buf = parts.pop()
        out = []
        for event in parts:
            if not event.startswith(b"data: "):
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                out.append(b"data: [DONE]\n\n")
                continue
            out.append(b"data: " + _dumps(json.loads(payload)).encode() + b"\n\n")
        for chunk in out:
            self.request.write(chunk)

    def connectionLost(self, reason: Any = None) -> None:
        try:
            self.request.unregisterProducer()
        except Exception:
            pass
        if not self.done.called:
            self.done.callback(None)

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()


class NoDelayPool(HTTPConnectionPool):
    def _newConnection(self, key: Any, endpoint: Any) -> Any:
        def nodelay(proto: Any) -> Any:
            proto.transport.setTcpNoDelay(True)
            return proto
        return super()._newConnection(key, endpoint).addCallback(nodelay)


class NoDelaySite(Site):
    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        orig = proto.connectionMade

        def made() -> None:
            orig()
            try:
                getattr(proto, "_channel", proto).transport.setTcpNoDelay(True)
            except Exception:
                pass

        proto.connectionMade = made
        return proto


def make_app(upstream: str, nodelay: bool = False) -> Klein:
    pool = (NoDelayPool if nodelay else HTTPConnectionPool)(reactor, persistent=True)
    pool.maxPersistentPerHost = 1024
    pool.retryAutomatically = False
    http = HTTPClient(Agent(reactor, pool=pool))
    url = upstream.rstrip("/") + "/v1/chat/completions"
    app = Klein()

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat(request: Any) -> Any:
        body = request.content.read()
        stream = b'"stream":true' in body.replace(b" ", b"")
        try:
            response = await http.request("POST", url, data=body, headers=_HEADERS, unbuffered=True)
        except Exception:  # the client left (or the upstream failed) before the answer: no traceback spam
            request.setResponseCode(502)
            return b'{"error":{"message":"upstream failed"}}'

        request.setResponseCode(response.code)
        if not stream:
            request.setHeader(b"content-type", b"application/json")
            return await response.content()
        request.setHeader(b"content-type", b"text/event-stream")
        relay = SSERelay(request)
        response.deliverBody(relay)
        await relay.done
        return b""

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=3198)
    p.add_argument("--upstream", default="http://127.0.0.1:3199")
    p.add_argument("--nodelay", action="store_true",
                   help="set TCP_NODELAY on client and upstream sockets (Twisted's default is off, as in sapproxy)")
    a = p.parse_args(argv)
    site = (NoDelaySite if a.nodelay else Site)(make_app(a.upstream, a.nodelay).resource())
    site.noisy = False
    site.log = lambda request: None
    reactor.listenTCP(a.port, site, backlog=4096, interface="127.0.0.1")
    print(f"bare pass-through on http://127.0.0.1:{a.port} -> {a.upstream}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
