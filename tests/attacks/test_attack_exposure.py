"""
Attack: reading the operator pages from outside (issue #15, exposure).

C{/health} and C{/metrics} were open and showed subaccounts, resource groups, deployment ids, client-sent
model names and key names.  Now the public C{/health} answers its status only; details and C{/metrics} need
C{ops_token} or C{metrics_token} when one is set, and come from the loopback interface only when none is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spine"))

from app_harness import Harness  # noqa: E402
from sapproxy.web.exposure import is_operator  # noqa: E402

HI = [{"role": "user", "content": "hi"}]


def health(h: Harness, token: str | None) -> dict[str, Any]:
    response, raw = h.get("/health", token=token)
    assert response.code == 200
    return json.loads(raw)


@pytest.mark.parametrize("setting", ["ops_token", "metrics_token"])
def test_with_a_token_public_health_is_status_only(setting: str) -> None:
    h = Harness(**{setting: "ops-secret-123"})
    h.post("/v1/chat/completions", {"model": "claude-sonnet-4-5-secret-name", "messages": HI})
    for token in (None, "sk-test", "wrong"):
        assert health(h, token) == {"status": "ok"}
        response, raw = h.get("/metrics", token=token)
        assert response.code == 401 and b"main" not in raw
    detailed = health(h, "ops-secret-123")
    assert detailed["subaccounts"]["main"]["token"] == "valid"
    assert "claude-sonnet-4-5-secret-name" in detailed["resolved_names"]
    response, raw = h.get("/metrics", token="ops-secret-123")
    assert response.code == 200 and b"sapproxy_" in raw


def test_without_a_token_details_go_to_loopback_only() -> None:
    h = Harness()
    assert "subaccounts" in health(h, None)  # StubTreq's client is 127.0.0.1

    class Remote:
        def __init__(self, host: str, cls: Any = IPv4Address) -> None:
            self.host = host
            self.cls = cls

        def getClientAddress(self) -> Any:
            return self.cls("TCP", self.host, 5555)

        def getHeader(self, name: bytes) -> None:
            return None

    assert not is_operator(Remote("10.1.2.3"), h.config)
    assert not is_operator(Remote("2001:db8::1", IPv6Address), h.config)
    assert is_operator(Remote("::1", IPv6Address), h.config)
    assert is_operator(Remote("127.0.0.1"), h.config)
