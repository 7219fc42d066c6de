"""
Body logging: off by default; when on, secrets never reach the log line.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import globalLogPublisher

from app_harness import Harness
from sapproxy.bodylog import REDACTED, BodyLogger


def test_redaction_of_keys_builtin_patterns_and_configured_ones() -> None:
    logger = BodyLogger([r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"])
    body = {"model": "gpt-4.1", "api_key": "plain-secret", "metadata": {"Authorization": "x"},
            "messages": [{"role": "user", "content": "my key sk-abcdefghijklmnop, card 1234-5678-9012-3456, "
                                                     "Bearer abc.def and eyJhbGciOiJIUzI1.eyJzdWIiOiIx.sig"}]}
    text = logger.redact(body)
    for secret in ("plain-secret", "sk-abcdefghijklmnop", "1234-5678-9012-3456", "abc.def", "eyJhbGciOiJIUzI1"):
        assert secret not in text
    assert json.loads(text)["api_key"] == REDACTED and "my key" in text
    assert BodyLogger(max_chars=10).redact({"x": "y" * 100}).endswith("more characters]")


def test_bodies_are_logged_only_when_enabled() -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        off = Harness()
        off.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]})
        assert not [e for e in events if e.get("log_namespace") == "sapproxy.body"]
        on = Harness()
        object.__setattr__(on.services, "bodies", BodyLogger())
        on.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": [{"role": "user", "content": "sk-leakleakleak"}]})
        bodies = [e for e in events if e.get("log_namespace") == "sapproxy.body"]
        assert [e["log_format"].split()[0] for e in bodies] == ["request", "response"]
        assert all("sk-leakleakleak" not in e["body"] for e in bodies)
    finally:
        globalLogPublisher.removeObserver(events.append)
