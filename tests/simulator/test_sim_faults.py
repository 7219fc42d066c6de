"""Fault injection by directive, by the controller and through the /_sim control endpoints (in memory)."""

from __future__ import annotations

from simhelp import Driver, Result, sse_events, sse_json, user

CHAT = "chat/completions?api-version=2024-10-21"
CHAT_PATH = "/v2/inference/deployments/d-gpt41/" + CHAT


def test_sim_fault_429_by_directive_and_controller() -> None:
    d = Driver()
    r = d.post("d-gpt41", CHAT, user('hi #sim{"fault": "429", "retry_after": 7}'))
    assert r.status == 429
    assert r.header("retry-after") == "7"
    assert r.json()["error"]["code"] == "429"
    d.sim.faults.set("d-gpt41", "429", count=2, retry_after=3)
    assert [d.post("d-gpt41", CHAT, user("hi")).status for _ in range(3)] == [429, 429, 200]


def test_sim_fault_500_503() -> None:
    d = Driver()
    d.sim.faults.set("d-gpt41", "500")
    d.sim.faults.set("d-gpt41", "503")
    r1, r2 = d.post("d-gpt41", CHAT, user("hi")), d.post("d-gpt41", CHAT, user("hi"))
    assert (r1.status, r2.status) == (500, 503)
    assert r1.json()["error"]["code"] == "InternalServerError"
    assert r2.header("retry-after") == "1"
    # Faults on one deployment leave the others alone.
    d.sim.faults.set("d-gpt5", "500")
    assert d.post("d-gpt41", CHAT, user("hi")).status == 200


def test_sim_fault_401_invalidates_token_once() -> None:
    d = Driver()
    token = d.token()
    d.sim.faults.set("d-gpt41", "401")
    r = d.request("POST", CHAT_PATH, body=user("hi"), headers=d.headers(token))
    assert r.status == 401
    r = d.request("POST", CHAT_PATH, body=user("hi"), headers=d.headers(token))
    assert r.status == 401  # that token is gone for good
    assert d.request("POST", CHAT_PATH, body=user("hi"), headers=d.headers(d.token())).status == 200


def test_sim_fault_token_down_and_star() -> None:
    d = Driver()
    d.sim.faults.set("*", "token_down")
    r = d.request("POST", "/oauth/token?grant_type=client_credentials", auth=("sim-client", "sim-secret"))
    assert r.status == 503
    assert d.token()
    d.sim.faults.set("*", "503")
    r = d.request("POST", "/oauth/token?grant_type=client_credentials", auth=("sim-client", "sim-secret"))
    assert r.status == 503
    token = d.token()
    d.sim.faults.set("*", "500")  # "*" reaches deployments too
    assert d.request("POST", CHAT_PATH, body=user("hi"), headers=d.headers(token)).status == 500
    assert d.request("POST", CHAT_PATH, body=user("hi"), headers=d.headers(token)).status == 200


def test_sim_fault_slow_headers_waits_on_clock() -> None:
    d = Driver()
    token = d.token()
    out = d.start("POST", CHAT_PATH, body=user('hi #sim{"fault": "slow_headers", "delay": 5}'),
                  headers=d.headers(token))
    assert out == []
    d.clock.advance(4.9)
    d.http.flush()
    assert out == []
    d.clock.advance(0.2)
    d.http.flush()
    assert isinstance(out[0], Result) and out[0].status == 200


def test_sim_stream_delay_paces_events_on_clock() -> None:
    d = Driver()
    token = d.token()
    body = {**user('hi #sim{"events": 4, "delay": 1.0}'), "stream": True}
    out = d.start("POST", CHAT_PATH, body=body, headers=d.headers(token))
    assert out == [] and d.sim.stats.open_streams == 1
    for _ in range(10):
        d.clock.advance(1.0)
        d.http.flush()
    assert isinstance(out[0], Result)
    assert len(sse_json(out[0].body)) == 7
    assert d.sim.stats.open_streams == 0


def test_sim_fault_error_mid_stream_openai() -> None:
    d = Driver()
    body = {**user('hi #sim{"fault": "error_mid_stream", "fault_after": 3}'), "stream": True}
    r = d.post("d-gpt41", CHAT, body)
    assert r.status == 200
    events = sse_events(r.body)
    assert len(events) == 4
    chunks = sse_json(r.body)
    assert chunks[-1]["error"]["type"] == "server_error"
    assert "[DONE]" not in [data for _, data in events]


def test_sim_control_endpoints() -> None:
    d = Driver()
    r = d.request("POST", "/_sim/faults", body={"deployment": "d-gpt41", "fault": "429", "count": 1,
                                                "retry_after": 9})
    assert r.status == 200
    assert r.json()["faults"] == [{"deployment": "d-gpt41", "fault": "429", "count": 1, "retry_after": 9}]
    stats = d.request("GET", "/_sim/stats").json()
    assert stats["faults"][0]["fault"] == "429"
    r = d.post("d-gpt41", CHAT, user("hi"))
    assert (r.status, r.header("retry-after")) == (429, "9")
    d.request("POST", "/_sim/faults", body={"deployment": "d-gpt41", "fault": "500", "count": 5})
    assert d.request("DELETE", "/_sim/faults").status == 200
    assert d.post("d-gpt41", CHAT, user("hi")).status == 200
    assert d.request("POST", "/_sim/faults", body={"deployment": "x", "fault": "bogus"}).status == 400
    stats = d.request("GET", "/_sim/stats").json()
    assert stats["token_requests"] == 2
    assert stats["requests"]["/v2/inference/deployments/d-gpt41/chat/completions"] == 2
    logged = d.request("GET", "/_sim/requests").json()
    assert logged[-1]["path"] == "/_sim/stats" or logged[-1]["path"].startswith("/v2/")
