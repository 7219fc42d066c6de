"""
Client model names served by another generation: warned once, shown in /v1/models, refused when strict.
"""

from __future__ import annotations

import json

import attrs
from app_harness import MODELS, Harness
from treq.testing import StubTreq
from twisted.logger import globalLogPublisher

from sapproxy.models import ModelCatalog
from sapproxy.web.app import build_app
from sapproxy.web.frame import ServicesRef

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
OPUS = "anthropic--claude-4.1-opus"


def _harness(strict: bool) -> Harness:
    h = Harness()
    catalog = ModelCatalog([*MODELS, OPUS], {}, {}, strict=strict)
    h.services = attrs.evolve(h.services, catalog=catalog)
    h.client = StubTreq(build_app(ServicesRef(h.services)).resource())
    discovery = h.gateway.providers["main"].discovery  # type: ignore[attr-defined]
    discovery.models[OPUS] = ("http://sim.test/v2/inference/deployments/d-opus",)
    discovery.generation += 1
    return h


def test_other_generation_is_served_warned_once_and_listed() -> None:
    h = _harness(strict=False)
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for _ in range(2):
            response, body = h.post(CHAT, {"model": "claude-opus-4-8[1m]", "messages": HI})
            assert response.code == 200, body
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if "another generation" in str(e.get("log_format", ""))]
    assert len(warnings) == 1 and warnings[0]["requested"] == "claude-opus-4-8[1m]"
    _, body = h.get("/v1/models")
    listed = {m["id"]: m for m in json.loads(body)["data"]}
    assert listed["claude-opus-4-8[1m]"]["served_by"] == OPUS
    _, body = h.get("/health", token=None)
    assert json.loads(body)["other_generation"] == {"claude-opus-4-8[1m]": OPUS}


def test_strict_model_names_refuses_another_generation_but_not_the_same_one() -> None:
    h = _harness(strict=True)
    response, body = h.post(CHAT, {"model": "claude-opus-4-8[1m]", "messages": HI})
    assert response.code == 404 and json.loads(body)["error"]["code"] == "model_not_found"
    response, body = h.post(CHAT, {"model": "claude-opus-4-1-20250805", "messages": HI})
    assert response.code == 200, body
    response, body = h.post(CHAT, {"model": "gpt-4.1-2025-04-14", "messages": HI})
    assert response.code == 200, body
