"""
Structured outputs through the gateway (issue 14, item 11): an OpenAI client's strict json_schema reaches
Claude 4.5 as output_config.format and the answer is JSON of that schema (older Claude: see
tests/translate/test_tr_audit_open.py).
"""

from __future__ import annotations

import json
from typing import Any

from app_harness import Harness

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
          "required": ["city", "temp"], "additionalProperties": False}


def _ask(h: Harness, model: str) -> tuple[Any, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "weather in Paris"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": True, "schema": SCHEMA}}}
    response, raw = h.post("/v1/chat/completions", body)
    return response, json.loads(raw)


def test_claude_45_enforces_the_schema_and_the_client_gets_json_of_it() -> None:
    h = Harness()
    response, body = _ask(h, "anthropic--claude-4.5-sonnet")
    assert response.code == 200, body
    answer = json.loads(body["choices"][0]["message"]["content"])
    assert set(answer) == {"city", "temp"} and isinstance(answer["temp"], (int, float))
    sent = [r["body"] for r in h.simulator.requests if "/invoke" in r["path"]][-1]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "system" not in sent
