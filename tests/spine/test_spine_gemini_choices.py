"""
OpenAI clients' logprobs and n > 1 (issue 14, item 16): Gemini answers them whole, as OpenAI choices with
their logprobs; streams and other families refuse them with a 400 naming the parameter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app_harness import Harness


def _ask(h: Harness, model: str, **extra: Any) -> tuple[Any, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
    response, raw = h.post("/v1/chat/completions", body)
    return response, raw


def test_gemini_gives_n_choices_with_logprobs() -> None:
    h = Harness()
    response, raw = _ask(h, "gemini-2.5-pro", n=2, logprobs=True, top_logprobs=2)
    body = json.loads(raw)
    assert response.code == 200, body
    sent = [r["body"] for r in h.simulator.requests if "generateContent" in r["path"]][-1]
    assert {k: sent["generationConfig"][k] for k in ("candidateCount", "responseLogprobs", "logprobs")} == {
        "candidateCount": 2, "responseLogprobs": True, "logprobs": 2}
    choices = body["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    for choice in choices:
        content = choice["logprobs"]["content"]
        assert "".join(t["token"] for t in content) == choice["message"]["content"]
        assert all(len(t["top_logprobs"]) == 2 and t["bytes"] == list(t["token"].encode()) for t in content)
    assert choices[0]["message"]["content"] != choices[1]["message"]["content"]


@pytest.mark.parametrize("model, extra, param, fragment", [
    ("gemini-2.5-pro", {"n": 2, "stream": True}, "n", "not supported in streams for Gemini models"),
    ("anthropic--claude-4.5-sonnet", {"logprobs": True}, "logprobs", "only for Gemini models"),
    ("anthropic--claude-4.5-sonnet", {"n": 2}, "n", "only for Gemini models"),
])
def test_refused_clearly_where_it_cannot_come_back(model: str, extra: dict[str, Any], param: str, fragment: str) -> None:
    h = Harness()
    response, raw = _ask(h, model, **extra)
    assert response.code == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and fragment in error["message"]
    assert not h.simulator.requests or all("generateContent" not in r["path"] and "/invoke" not in r["path"]
                                           for r in h.simulator.requests)
