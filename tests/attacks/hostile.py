"""
A hostile upstream for the in-memory gateway: tokens from the simulated XSUAA, inference answers chosen by
the test (any status, headers and body), so an attack can send what no well-behaved upstream would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from treq.testing import StubTreq
from twisted.web.resource import Resource

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spine"))

from app_harness import Harness  # noqa: E402
from sapproxy.dispatch.forward import Gateway  # noqa: E402
from sapproxy.upstreams.http import UpstreamClient  # noqa: E402
from sapproxy.web.app import build_app  # noqa: E402
from sapproxy.web.frame import ServicesRef  # noqa: E402

import attrs  # noqa: E402

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
    h = Harness(**config)
    sim = h.simulator.resource()
    hostile = Hostile(sim, answer)

    class Root(Resource):
        def getChild(self, name: bytes, request: Any) -> Resource:
            request.postpath.insert(0, name)
            request.prepath.pop()
            return hostile if b"/oauth/token" not in request.uri else sim

    h.upstream = StubTreq(Root())
    h.gateway = Gateway(h.config, h.clock, h.upstream, UpstreamClient(h.upstream._agent), metrics=h.metrics)
    h.services = attrs.evolve(h.services, gateway=h.gateway)
    h.client = StubTreq(build_app(ServicesRef(h.services)).resource())
    return h, hostile
