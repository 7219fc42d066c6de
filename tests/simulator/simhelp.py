"""
Helpers for the simulator's tests: drive a simulator in memory through StubTreq, and split SSE bodies.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import define
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from sapproxy.simulator import Simulator, SimulatorConfig, default_simulator_config, make_simulator

BASE = "http://sim.test"


@define
class Result:
    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        value = self.headers.getRawHeaders(name)
        return value[0] if value else None


class Driver:
    """One in-memory simulator with a fake clock."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.sim: Simulator = make_simulator(config or default_simulator_config(), self.clock)
        self.http = StubTreq(self.sim.resource())

    def start(self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None,
              auth: tuple[str, str] | None = None, data: bytes | None = None) -> list[Any]:
        """Begin a request; the returned list receives the Result (or a Failure) once it completes."""
        out: list[Any] = []
        if body is not None:
            data = json.dumps(body).encode()
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if data is not None:
            kwargs["data"] = data
        if auth is not None:
            kwargs["auth"] = auth
        d = self.http.request(method, BASE + path, **kwargs)  # type: ignore[attr-defined]

        def got(resp: Any) -> Any:
            return resp.content().addCallback(lambda b: out.append(Result(resp.code, resp.headers, b)))

        d.addCallback(got)
        d.addErrback(out.append)
        self.http.flush()
        return out

    def request(self, method: str, path: str, **kwargs: Any) -> Result:
        out = self.start(method, path, **kwargs)
        assert out, "request did not complete"
        assert isinstance(out[0], Result), out[0]
        return out[0]

    def token(self) -> str:
        r = self.request("POST", "/oauth/token?grant_type=client_credentials", auth=("sim-client", "sim-secret"))
        assert r.status == 200, r.body
        return str(r.json()["access_token"])

    def headers(self, token: str | None = None, group: str = "default") -> dict[str, str]:
        return {"Authorization": "Bearer " + (token or self.token()), "AI-Resource-Group": group,
                "Content-Type": "application/json"}

    def post(self, deployment: str, subpath: str, body: Any, **kwargs: Any) -> Result:
        return self.request("POST", f"/v2/inference/deployments/{deployment}/{subpath}", body=body,
                            headers=self.headers(), **kwargs)


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of an SSE body written with LF or CRLF line ends."""
    text = body.decode("utf-8").replace("\r\n", "\n")
    out: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        out.append((name, "\n".join(data)))
    return out


def sse_json(body: bytes) -> list[Any]:
    """The JSON data of every SSE event except a final [DONE]."""
    return [json.loads(data) for _, data in sse_events(body) if data != "[DONE]"]


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}
