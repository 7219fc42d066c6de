"""
A hostile upstream for the in-memory gateway: tokens from the simulated XSUAA, inference answers chosen by
the test (any status, headers and body), so an attack can send what no well-behaved upstream would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from twisted.web.resource import Resource

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spine"))


from app_harness import Harness  # noqa: E402

Answer = Callable[[Any], bytes]


class Hostile(Resource):
    isLeaf = True

    def __init__(self, simulator: Resource, answer: Answer) -> None:
        super().__init__()
        self._simulator = simulator
        self.answer = answer
        self.calls = 0

    def render(self, request: Any) -> Any:
        if b"/oauth/token" in request.uri:
            return self._simulator.render(request)  # type: ignore[attr-defined]
        self.calls += 1
        return self.answer(request)


def hostile_harness(answer: Answer, **config: Any) -> tuple[Harness, Hostile]:
    """
    The in-memory gateway with every inference call answered by C{answer} (tokens by the simulator).
    """
    made: list[Hostile] = []

    def upstream(sim: Any) -> Resource:
        hostile = Hostile(sim, answer)
        made.append(hostile)

        class Root(Resource):
            def getChild(self, name: bytes, request: Any) -> Resource:
                request.postpath.insert(0, name)
                request.prepath.pop()
                return hostile if b"/oauth/token" not in request.uri else sim

        return Root()

    h = Harness(upstream=upstream, **config)
    return h, made[0]


class ScriptedResponse:
    """
    An upstream response whose body is delivered as the test scripts it: some chunks, then an end (clean,
    or a reset).
    """

    def __init__(self, code: int, content_type: bytes, chunks: list[bytes], *, reset: bool = False,
                 length: Any = None) -> None:
        from twisted.web.http_headers import Headers
        from twisted.web.iweb import UNKNOWN_LENGTH

        self.code = code
        self.headers = Headers({b"content-type": [content_type]})
        self.length = UNKNOWN_LENGTH if length is None else length
        self._chunks = chunks
        self._reset = reset
        self.stopped = False

    def deliverBody(self, protocol: Any) -> None:
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone, ResponseFailed

        response = self

        class Transport:
            def pauseProducing(self) -> None:
                pass

            def resumeProducing(self) -> None:
                pass

            def stopProducing(self) -> None:
                response.stopped = True

            def loseConnection(self) -> None:
                response.stopped = True

        protocol.makeConnection(Transport())
        for chunk in self._chunks:
            if self.stopped:
                return
            protocol.dataReceived(chunk)
        if self.stopped:
            return
        reason = Failure(ResponseFailed([Failure(ConnectionLost())])) if self._reset else Failure(ResponseDone())
        protocol.connectionLost(reason)


class ScriptedUpstream:
    """
    The gateway's inference client, answering each call with the next scripted response.
    """

    def __init__(self, responses: list[Callable[[], ScriptedResponse]]) -> None:
        self.responses = responses
        self.calls: list[bytes] = []

    def post(self, url: bytes, headers: Any, body: bytes) -> Any:
        from twisted.internet.defer import succeed

        self.calls.append(url)
        make = self.responses[min(len(self.calls) - 1, len(self.responses) - 1)]
        return succeed(make())


def scripted_harness(responses: list[Callable[[], ScriptedResponse]], **config: Any) -> tuple[Harness, ScriptedUpstream]:
    """
    The in-memory gateway with two deployments for every model, whose inference calls get C{responses}.
    """
    from app_harness import MODELS, SIM
    from sapproxy.config import ServiceKey, SubAccount

    key = ServiceKey(clientid="sim-client", clientsecret="sim-secret", url=SIM)
    doubled = {m: (f"{SIM}/v2/inference/deployments/{d}", f"{SIM}/v2/inference/deployments/{d}-b")
               for m, d in MODELS.items()}
    upstream = ScriptedUpstream(responses)
    h = Harness(inference=upstream, subaccounts={"main": SubAccount("main", key, doubled)}, **config)
    return h, upstream
