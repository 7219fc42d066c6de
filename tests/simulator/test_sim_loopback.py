"""
The simulator on a real loopback port: connection resets, stalls and backpressure, which an in-memory
transport cannot show.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.server import Site

from sapproxy.simulator import Simulator, default_simulator_config, make_simulator

CHAT = "/v2/inference/deployments/d-gpt41/chat/completions?api-version=2024-10-21"


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)  # type: ignore[arg-type]


@pytest.fixture
def served() -> Generator[tuple[Simulator, str], None, None]:
    sim = make_simulator(default_simulator_config(), reactor)  # type: ignore[arg-type]
    port = reactor.listenTCP(0, Site(sim.resource()), interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    yield sim, f"http://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
    pytest_twisted.blockon(port.stopListening())


@pytest_twisted.inlineCallbacks
def _token(base: str) -> Generator[Any, Any, str]:
    resp = yield treq.post(base + "/oauth/token?grant_type=client_credentials", auth=("sim-client", "sim-secret"))
    body = yield resp.json()
    return str(body["access_token"])


def _headers(token: str) -> dict[bytes | str, bytes | str]:
    return {"Authorization": "Bearer " + token, "AI-Resource-Group": "default", "Content-Type": "application/json"}


def _chat(text: str, stream: bool = True) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": text}], "stream": stream}).encode()


@pytest_twisted.inlineCallbacks
def test_sim_loopback_stream_and_reset_before_headers(served: tuple[Simulator, str]) -> Generator[Any, Any, None]:
    sim, base = served
    token = yield _token(base)
    resp = yield treq.post(base + CHAT, data=_chat('hi #sim{"events": 3}'), headers=_headers(token),
                           unbuffered=True)
    assert resp.code == 200
    body = yield treq.content(resp)
    assert body.endswith(b"data: [DONE]\n\n")
    sim.faults.set("d-gpt41", "reset_before_headers")
    with pytest.raises(Exception) as info:
        yield treq.post(base + CHAT, data=_chat("hi"), headers=_headers(token), persistent=False)
    assert "ResponseNeverReceived" in repr(info.value) or "ConnectionLost" in repr(info.value)
    yield sleep(0.05)
    assert sim.stats.open_streams == 0


@pytest_twisted.inlineCallbacks
def test_sim_loopback_reset_mid_stream(served: tuple[Simulator, str]) -> Generator[Any, Any, None]:
    sim, base = served
    token = yield _token(base)
    resp = yield treq.post(base + CHAT, data=_chat('hi #sim{"fault": "reset_mid_stream", "fault_after": 3}'),
                           headers=_headers(token), unbuffered=True, persistent=False)
    assert resp.code == 200
    received: list[bytes] = []
    with pytest.raises(Exception) as info:
        yield treq.collect(resp, received.append)
    assert "ResponseFailed" in repr(info.value) or "ConnectionLost" in repr(info.value)
    data = b"".join(received)
    assert data.count(b"data: ") == 3
    yield sleep(0.05)
    assert sim.stats.open_streams == 0


@pytest_twisted.inlineCallbacks
def test_sim_loopback_stall_until_client_leaves(served: tuple[Simulator, str]) -> Generator[Any, Any, None]:
    sim, base = served
    token = yield _token(base)
    resp = yield treq.post(base + CHAT, data=_chat('hi #sim{"fault": "stall_mid_stream", "fault_after": 2}'),
                           headers=_headers(token), unbuffered=True, persistent=False)
    received: list[bytes] = []
    done = treq.collect(resp, received.append)
    yield sleep(0.3)
    assert not done.called
    assert b"".join(received).count(b"data: ") == 2
    assert sim.stats.open_streams == 1
    done.addErrback(lambda f: None)
    resp.original._transport.stopProducing()  # the client hangs up
    yield sleep(0.1)
    assert sim.stats.open_streams == 0


class _Lazy(protocol.Protocol):
    """A client that sends one request and then stops reading."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = 0

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > 100_000:
            self.transport.pauseProducing()  # type: ignore[union-attr]


@pytest_twisted.inlineCallbacks
def test_sim_loopback_backpressure_bounds_memory(served: tuple[Simulator, str]) -> Generator[Any, Any, None]:
    sim, base = served
    token = yield _token(base)
    payload = _chat('big #sim{"events": 50000, "event_bytes": 4096}')
    port = int(base.rsplit(":", 1)[1])
    raw = (b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Authorization: Bearer " + token.encode() + b"\r\nAI-Resource-Group: default\r\n"
           b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    client = _Lazy(raw)
    conn = yield protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port)
    # The stream gets going (pause/resume cycles while the client reads its first 100 kB and the kernel
    # buffers fill)...
    for _ in range(50):
        if sim.stats.bytes_written > 1_000_000:
            break
        yield sleep(0.1)
    # Nothing blocks the reactor: the stream flowed while the client read and the kernel buffers filled.
    assert sim.stats.bytes_written > 1_000_000, (sim.stats.bytes_written, client.received)
    yield sleep(1.0)
    # ...and then stops: 200 MB were asked for (loopback moves that in well under a second), but a client that
    # stopped reading holds the simulator to socket buffers' worth, with the stream still open.
    assert sim.stats.open_streams == 1
    assert sim.stats.bytes_written < 40_000_000, (sim.stats.bytes_written, client.received)
    before = sim.stats.bytes_written
    yield sleep(0.5)
    assert sim.stats.bytes_written == before
    conn.transport.loseConnection()
    yield sleep(0.2)
    assert sim.stats.open_streams == 0
