"""
Testing helpers for code that uses sapproxy, as L{treq.testing} is for treq: the whole gateway in memory.

L{InMemoryGateway} is the Klein app over the simulated SAP AI Core, with no sockets and no global reactor: one
L{MemoryReactorClock} drives the gateway, its token fetches and the simulator; requests go in through treq's
L{RequestTraversalAgent} and the upstream calls come out through another.  Usage rows are kept in a list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, cast

import attrs
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import IResource

from sapproxy.accounting import Accounting
from sapproxy.auth import Authenticator
from sapproxy.compat import SynchronousBodyProducer
from sapproxy.config import GatewayConfig, ServiceKey, SubAccount
from sapproxy.dispatch.forward import Gateway
from sapproxy.dispatch.plan import Planner
from sapproxy.metrics import GatewayMetrics
from sapproxy.models import ModelCatalog
from sapproxy.registry import WIRE_FORMATS, build_providers
from sapproxy.runtime import IGatewayReactor
from sapproxy.simulator import default_simulator_config, make_simulator
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.http import UpstreamClient
from sapproxy.usage.db import open_database
from sapproxy.usage.responses import ResponseStore
from sapproxy.web.app import build_app
from sapproxy.web.frame import Services, ServicesRef

__all__ = ["InMemoryGateway", "UsageRows", "SIMULATOR_URL", "TEST_KEY", "SIMULATED_MODELS", "sse_data"]

#: The client key the in-memory gateway accepts.
TEST_KEY = "sk-test"
#: Where the in-memory gateway believes the simulator is (never resolved: the agent serves it in memory).
SIMULATOR_URL = "http://sim.test"
#: Configured model -> simulated deployment id.
SIMULATED_MODELS: Mapping[str, str] = {
    "gpt-4.1": "d-gpt41", "gpt-5": "d-gpt5", "text-embedding-3-small": "d-embed",
    "anthropic--claude-4.5-sonnet": "d-sonnet", "anthropic--claude-4.5-haiku": "d-haiku",
    "gemini-2.5-pro": "d-gemini",
}


class UsageRows:
    """
    A usage store that keeps the rows it is given, in order.
    """

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def record(self, row: Any) -> None:
        self.rows.append(row)


def _memory_database() -> Any:
    """An in-memory SQLite usage database with its schema (the Responses API's stored responses live there)."""
    database = open_database("sqlite:///:memory:")
    database.migrate()
    return database


class InMemoryGateway:
    """
    The gateway over the simulator, in memory.

    @ivar clock: the reactor every part runs on; advance it to fire timers.
    @ivar simulator: the simulated SAP AI Core (its fault injection is C{simulator.faults}).
    @ivar gateway: the dispatcher; C{gateway.providers} are the subaccounts.
    @ivar rows: the usage rows written so far.
    @param config_changes: L{GatewayConfig} fields to change from the default in-memory config.
    """

    def __init__(self, *, upstream: Callable[[IResource], IResource] | None = None, inference: Any = None,
                 images: Any = None, **config_changes: Any) -> None:
        """
        @param upstream: given the simulator's resource, the resource every upstream call (token fetches
            included) is served by: a test wraps the simulator to answer as no well-behaved upstream would.
        @param inference: what inference calls go through instead (anything with the C{post(url, headers,
            body)} of L{UpstreamClient}), for a test that scripts the upstream's responses byte by byte.
        @param images: the image fetcher (L{sapproxy.upstreams.image_fetch.ImageFetcher}), or None (fetching off).
        """
        self.clock = MemoryReactorClock()
        self.simulator = make_simulator(default_simulator_config(), self.clock)
        served = self.simulator.resource()
        self._upstream_agent = RequestTraversalAgent(upstream(served) if upstream is not None else served)
        self.upstream = HTTPClient(self._upstream_agent, data_to_body_producer=SynchronousBodyProducer)
        key = ServiceKey(clientid="sim-client", clientsecret="sim-secret", url=SIMULATOR_URL)
        accounts = {"main": SubAccount("main", key, {m: (f"{SIMULATOR_URL}/v2/inference/deployments/{d}",)
                                                     for m, d in SIMULATED_MODELS.items()})}
        self.config = attrs.evolve(GatewayConfig(path=Path("/nonexistent/config.json"), subaccounts=accounts,
                                                 secret_authentication_tokens=(TEST_KEY,)), **config_changes)
        self.metrics = GatewayMetrics()
        context = ProviderContext(reactor=self.clock, http=self.upstream, config=self.config, metrics=self.metrics)
        # Inference calls go through the same in-memory agent the token fetches use (one flush for both).
        # The in-memory reactor provides what the dispatcher uses of a reactor (time), not threads or TCP.
        self.gateway = Gateway(self.config, cast(IGatewayReactor, self.clock),
                               inference if inference is not None else UpstreamClient(self._upstream_agent),
                               providers=build_providers(self.config, context), planner=Planner(WIRE_FORMATS),
                               metrics=self.metrics)
        self.rows = UsageRows()
        self.services = Services(
            gateway=self.gateway,
            catalog=ModelCatalog(SIMULATED_MODELS, {}, {}),
            authenticator=Authenticator([TEST_KEY]),
            accounting=Accounting(self.clock, metrics=self.metrics, store=self.rows),
            metrics=self.metrics,
            images=images,
            responses=ResponseStore(_memory_database(), reactor=self.clock),
        )
        self.client: Any = StubTreq(build_app(ServicesRef(self.services)).resource())

    def flush(self) -> None:
        """
        Deliver whatever the upstream and the client sides have pending, once.
        """
        self._upstream_agent.flush()
        self.client.flush()

    def wait(self, d: Deferred[Any]) -> Any:
        """
        Run the in-memory world until C{d} fires; its result (a failure is raised).
        """
        results: list[Any] = []
        d.addBoth(results.append)
        for _ in range(200):
            if results:
                break
            self.flush()
            self.clock.advance(0)
        assert results, "the request never finished"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]

    def post(self, path: str, body: Any, *, token: str | None = TEST_KEY, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
        """
        POST C{body} (JSON) or C{raw} bytes to the gateway; the response and its whole body.
        """
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        response = self.wait(self.client.request("POST", "http://gw.test" + path, data=data, headers=hdrs))
        return response, self.wait(self.client.content(response))

    def get(self, path: str, *, token: str | None = TEST_KEY) -> tuple[Any, bytes]:
        """
        GET C{path} from the gateway; the response and its whole body.
        """
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.wait(self.client.request("GET", "http://gw.test" + path, headers=hdrs))
        return response, self.wait(self.client.content(response))


def sse_data(body: bytes) -> list[str]:
    """
    The C{data:} fields of an SSE body, in order.
    """
    return [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]
