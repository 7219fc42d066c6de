"""The #sim{...} directives: parsing, and reaching the simulator through every dialect's last user turn."""

from __future__ import annotations

from typing import Any

import pytest

from sapproxy.simulator import Directive, extract_directive
from sapproxy.simulator.textgen import reply_piece
from simhelp import Driver, sse_json

CHAT = "chat/completions?api-version=2024-10-21"


def test_sim_directive_parsing() -> None:
    assert extract_directive("plain") == ("plain", Directive())
    text, d = extract_directive('tell me #sim{"events": 3, "fault": "429", "thinking": true} please')
    assert text == "tell me please"
    assert d == Directive(events=3, fault="429", thinking=True)
    text, d = extract_directive('x #sim{"note": "has } brace", "events": 2}')
    assert text == "x" and d.events == 2
    assert extract_directive("broken #sim{events: 3}") == ("broken #sim{events: 3}", Directive())


def test_sim_event_bytes_pads_each_delta() -> None:
    d = Directive(events=3, event_bytes=1000)
    assert all(len(reply_piece("hi", d, i).encode()) == 1000 for i in range(3))


@pytest.mark.parametrize("deployment,path,body", [
    ("d-gpt41", CHAT, {"messages": [{"role": "system", "content": "s"},
                                    {"role": "user", "content": [{"type": "text", "text": "a #sim{\"events\": 2}"}]}]}),
    ("d-sonnet", "invoke", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                            "messages": [{"role": "user", "content": "a #sim{\"events\": 2}"}]}),
    ("d-sonnet", "converse", {"messages": [{"role": "user", "content": [{"text": "a #sim{\"events\": 2}"}]}]}),
    ("d-gemini", "models/gemini-2.5-pro:generateContent",
     {"contents": [{"role": "user", "parts": [{"text": "a #sim{\"events\": 2}"}]}]}),
])
def test_sim_directive_reaches_every_dialect(deployment: str, path: str, body: dict[str, Any]) -> None:
    d = Driver()
    r = d.post(deployment, path, body)
    assert r.status == 200, r.body
    assert "Echo: a bravo" in r.body.decode()
    assert "#sim" not in r.body.decode() and "charlie" not in r.body.decode()


def test_sim_directive_stop_and_no_usage() -> None:
    d = Driver()
    r = d.post("d-gpt41", CHAT, {"messages": [{"role": "user", "content": 'x #sim{"stop": "max_tokens"}'}]})
    assert r.json()["choices"][0]["finish_reason"] == "length"
    r = d.post("d-sonnet", "invoke", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                                      "stop_sequences": ["END"],
                                      "messages": [{"role": "user", "content": 'x #sim{"stop": "stop_sequence"}'}]})
    assert (r.json()["stop_reason"], r.json()["stop_sequence"]) == ("stop_sequence", "END")
    r = d.post("d-gemini", "models/gemini-2.5-pro:generateContent",
               {"contents": [{"parts": [{"text": 'x #sim{"stop": "max_tokens", "no_usage": true}'}]}]})
    assert r.json()["candidates"][0]["finishReason"] == "MAX_TOKENS" and "usageMetadata" not in r.json()
    body = {"messages": [{"role": "user", "content": 'x #sim{"no_usage": true}'}], "stream": True,
            "stream_options": {"include_usage": True}}
    assert sse_json(d.post("d-gpt41", CHAT, body).body)[-1]["choices"] != []


def test_sim_config_event_delay_and_directive_override() -> None:
    import attrs

    from sapproxy.simulator import default_simulator_config
    d = Driver(attrs.evolve(default_simulator_config(), event_delay=0.5))
    token = d.token()
    path = "/v2/inference/deployments/d-gpt41/" + CHAT
    out = d.start("POST", path, headers=d.headers(token), body={
        "messages": [{"role": "user", "content": 'x #sim{"events": 2}'}], "stream": True})
    assert out == []
    d.clock.advance(10)
    d.http.flush()
    for _ in range(10):
        d.clock.advance(0.5)
        d.http.flush()
    assert out and out[0].status == 200
    fast = d.start("POST", path, headers=d.headers(token), body={
        "messages": [{"role": "user", "content": 'x #sim{"events": 2, "delay": 0}'}], "stream": True})
    assert fast and fast[0].status == 200
