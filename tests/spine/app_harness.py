"""
The whole gateway in memory: the Klein app over StubTreq, its upstream HTTP client a StubTreq over the
simulated SAP AI Core, one MemoryReactorClock for both.  No sockets, no global reactor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from sapproxy.accounting import Accounting
from sapproxy.web.app import build_app
from sapproxy.auth import Authenticator
from sapproxy.config import GatewayConfig, ServiceKey, SubAccount
from sapproxy.dispatch.plan import ExchangeBuilder
from sapproxy.dispatch.forward import Gateway
from sapproxy.metrics import GatewayMetrics
from sapproxy.models import ModelCatalog
from sapproxy.web.frame import Services, ServicesRef
from sapproxy.upstreams.http import UpstreamClient
from sapproxy.simulator import default_simulator_config, make_simulator

TOKEN = "sk-test"
SIM = "http://sim.test"
MODELS = {
    "gpt-4.1": "d-gpt41", "gpt-5": "d-gpt5", "text-embedding-3-small": "d-embed",
    "anthropic--claude-4.5-sonnet": "d-sonnet", "anthropic--claude-4.5-haiku": "d-haiku", "gemini-2.5-pro": "d-gemini",
}


class Rows:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    def record(self, row: Any) -> None:
        self.rows.append(row)


class Harness:
    def __init__(self, *, images: Any = None, **config_changes: Any) -> None:
        self.clock = MemoryReactorClock()
        self.simulator = make_simulator(default_simulator_config(), self.clock)
        self.upstream = StubTreq(self.simulator.resource())
        key = ServiceKey(clientid="sim-client", clientsecret="sim-secret", url=SIM)
        accounts = {"main": SubAccount("main", key, {m: (f"{SIM}/v2/inference/deployments/{d}",)
                                                     for m, d in MODELS.items()})}
        self.config = attrs.evolve(GatewayConfig(path=Path("/nonexistent/config.json"), subaccounts=accounts,
                                                 secret_authentication_tokens=(TOKEN,)), **config_changes)
        self.metrics = GatewayMetrics()
        # Inference calls go through the same in-memory agent treq's token fetches use (one flush for both).
        self.gateway = Gateway(self.config, self.clock, self.upstream, UpstreamClient(self.upstream._agent),
                               metrics=self.metrics)
        self.rows = Rows()
        self.services = Services(
            gateway=self.gateway,
            catalog=ModelCatalog(MODELS, {}, {}),
            authenticator=Authenticator([TOKEN]),
            accounting=Accounting(self.clock, metrics=self.metrics, store=self.rows),
            builder=ExchangeBuilder(self.config),
            metrics=self.metrics,
            images=images,
        )
        self.client = StubTreq(build_app(ServicesRef(self.services)).resource())

    def wait(self, d: Deferred[Any]) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        for _ in range(200):
            if results:
                break
            self.upstream.flush()
            self.client.flush()
            self.clock.advance(0)
        assert results, "the request never finished"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]

    def post(self, path: str, body: Any, *, token: str | None = TOKEN, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        response = self.wait(self.client.request("POST", "http://gw.test" + path, data=data, headers=hdrs))
        return response, self.wait(self.client.content(response))

    def get(self, path: str, *, token: str | None = TOKEN) -> tuple[Any, bytes]:
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.wait(self.client.request("GET", "http://gw.test" + path, headers=hdrs))
        return response, self.wait(self.client.content(response))


def sse_data(body: bytes) -> list[str]:
    return [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]
