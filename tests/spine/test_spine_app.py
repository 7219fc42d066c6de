"""
The whole request path in memory: routes, auth, model resolution, token, upstream call, conversion,
errors in the caller's dialect, and the usage row every request leaves.
"""

from __future__ import annotations

import json

from app_harness import Harness, sse_data

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def test_gpt_non_stream_pass_through_names_the_requested_model() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "gpt-4.1-2025-04-14", "messages": HI})
    reply = json.loads(body)
    assert response.code == 200
    assert reply["model"] == "gpt-4.1-2025-04-14"
    assert reply["choices"][0]["message"]["content"].startswith("Echo: hi")
    (row,) = h.rows.rows
    assert (row.status, row.model_resolved, row.deployment, row.stream) == (200, "gpt-4.1", "d-gpt41", False)
    assert row.prompt_tokens == reply["usage"]["prompt_tokens"] and row.completion_tokens > 0


def test_gpt_stream_has_one_id_no_azure_preamble_and_one_done() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "gpt-4.1", "stream": True, "messages": HI})
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    events = sse_data(body)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] for c in chunks), "no Azure prompt_filter_results preamble, no unasked usage chunk"
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # The gateway asked upstream for usage anyway, so the row has real counts.
    (row,) = h.rows.rows
    assert row.completion_tokens > 0 and not row.tokens_estimated


def test_gpt_stream_usage_chunk_only_when_asked() -> None:
    h = Harness()
    _, body = h.post(CHAT, {"model": "gpt-4.1", "stream": True, "messages": HI,
                            "stream_options": {"include_usage": True}})
    events = sse_data(body)
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0


def test_unknown_model_is_a_404_in_each_dialect() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "gpt-9", "messages": HI})
    assert response.code == 404
    error = json.loads(body)["error"]
    assert "gpt-9" in error["message"] and error["type"] == "not_found_error" and error["code"] == "model_not_found"
    response, body = h.post("/v1/messages", {"model": "claude-nothing", "max_tokens": 5, "messages": HI})
    assert response.code == 404
    assert json.loads(body)["type"] == "error" and json.loads(body)["error"]["type"] == "not_found_error"


def test_auth_errors_in_each_dialect() -> None:
    h = Harness()
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI}, token=None)
    assert response.code == 401
    assert set(json.loads(body)["error"]) >= {"message", "type", "code"}
    response, body = h.post("/v1/messages", {"model": "gpt-4.1", "max_tokens": 5, "messages": HI}, token="wrong")
    assert response.code == 401
    assert json.loads(body) == {"type": "error", "error": {"type": "authentication_error",
                                                          "message": json.loads(body)["error"]["message"]}}


def test_bad_input_never_500() -> None:
    h = Harness()
    cases = [
        (CHAT, b"{not json", 400), (CHAT, b"[1,2]", 400), (CHAT, b"\xff\xfe", 400), (CHAT, b"", 400),
        (CHAT, json.dumps({"messages": HI}).encode(), 400),
        (CHAT, json.dumps({"model": "gpt-4.1", "messages": []}).encode(), 400),
        (CHAT, json.dumps({"model": "gpt-4.1", "messages": "hi"}).encode(), 400),
        (CHAT, json.dumps({"model": "gpt-4.1", "messages": HI, "stream": "yes"}).encode(), 400),
        (CHAT, b"[" * 100000 + b"]" * 100000, 400),
        ("/v1/messages", json.dumps({"model": "gpt-4.1", "messages": HI}).encode(), 400),
    ]
    for path, raw, status in cases:
        response, body = h.post(path, None, raw=raw)
        assert response.code == status, (raw[:40], body)
        parsed = json.loads(body)
        assert ("error" in parsed) and (parsed.get("type") == "error") == path.startswith("/v1/messages")


def test_unknown_route_and_wrong_method() -> None:
    h = Harness()
    response, body = h.post("/v1/nothing", {})
    assert response.code == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    response, body = h.get(CHAT)
    assert response.code == 405 and "POST" in json.loads(body)["error"]["message"]


def test_models_and_health_list_no_secret() -> None:
    h = Harness()
    response, body = h.get("/v1/models")
    listed = json.loads(body)
    assert response.code == 200 and listed["object"] == "list"
    assert {m["id"] for m in listed["data"]} >= {"gpt-4.1", "gemini-2.5-pro"}
    assert all(isinstance(m["created"], int) and m["object"] == "model" for m in listed["data"])
    h.post(CHAT, {"model": "claude-sonnet-4-5-20250929", "messages": HI})
    _, health = h.get("/health", token=None)
    assert b"sim-secret" not in health and b"sk-test" not in health
    state = json.loads(health)
    assert state["subaccounts"]["main"]["token"] == "valid"
    assert state["resolved_names"]["claude-sonnet-4-5-20250929"] == "anthropic--claude-4.5-sonnet"


def test_upstream_401_refreshes_the_token_once() -> None:
    h = Harness()
    h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    h.simulator.faults.set("d-gpt41", "401", count=1)
    response, _ = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 200
    assert h.gateway.providers["main"].tokens.fetches == 2


def test_token_endpoint_down_is_a_503_and_not_cached() -> None:
    h = Harness()
    h.simulator.faults.set("*", "token_down", count=1)
    response, body = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 503 and "token" in json.loads(body)["error"]["message"]
    # One fetch for the whole request, and none while the subaccount backs off.
    assert h.simulator.stats.token_requests == 1
    response, _ = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 503 and h.simulator.stats.token_requests == 1
    h.clock.advance(2)
    response, _ = h.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    assert response.code == 200


def test_resolved_model_header_and_traceparent_upstream() -> None:
    h = Harness()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response, _ = h.post(CHAT, {"model": "claude-3-5-haiku-latest", "messages": HI}, headers={"traceparent": trace})
    assert response.headers.getRawHeaders(b"x-sapproxy-model") == [b"anthropic--claude-4.5-haiku"]
    upstream = [r for r in h.simulator.requests if "/invoke" in r["path"]][-1]
    assert upstream["headers"]["traceparent"] == trace


def test_claude_through_converse_when_configured() -> None:
    from sapproxy.config import ModelSettings

    h = Harness(models={"anthropic--claude-4.5-sonnet": ModelSettings(converse=True)})
    for stream in (False, True):
        response, body = h.post(CHAT, {"model": "anthropic--claude-4.5-sonnet", "stream": stream, "messages": HI})
        assert response.code == 200
        text = body.decode()
        assert "Echo: hi" in text if not stream else "Echo" in "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or "" for e in sse_data(body)[:-1]
            if json.loads(e)["choices"])
        response, body = h.post("/v1/messages", {"model": "anthropic--claude-4.5-sonnet", "stream": stream,
                                                 "max_tokens": 50, "messages": HI})
        assert response.code == 200 and b"Echo" in body
    paths = [r["path"] for r in h.simulator.requests if "/deployments/" in r["path"]]
    assert sum(p.endswith("/converse") for p in paths) == 2 and sum(p.endswith("/converse-stream") for p in paths) == 2
    assert h.rows.rows[-1].completion_tokens > 0


PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _upstream_bodies(h: Harness, fragment: str) -> list[dict]:
    return [r["body"] for r in h.simulator.requests if fragment in r["path"]]


def test_images_reach_claude_and_gemini_from_an_openai_client() -> None:
    h = Harness()
    content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": PNG}}]
    for model, fragment in (("anthropic--claude-4.5-sonnet", "/invoke"), ("gemini-2.5-pro", "generateContent")):
        response, _ = h.post(CHAT, {"model": model, "messages": [{"role": "user", "content": content}]})
        assert response.code == 200
        sent = json.dumps(_upstream_bodies(h, fragment)[-1])
        assert PNG.split(",", 1)[1] in sent and "image/png" in sent


def test_reasoning_effort_becomes_claude_thinking_with_its_signature() -> None:
    from sapproxy.simulator import textgen

    h = Harness()
    response, body = h.post(CHAT, {"model": "anthropic--claude-4.5-sonnet", "reasoning_effort": "low",
                                   "messages": HI, "max_completion_tokens": 4000})
    assert response.code == 200
    upstream = _upstream_bodies(h, "/invoke")[-1]
    assert upstream["thinking"]["type"] == "enabled" and upstream["max_tokens"] > upstream["thinking"]["budget_tokens"]
    message = json.loads(body)["choices"][0]["message"]
    assert message["reasoning_content"]
    (block,) = message["thinking_blocks"]
    assert block["signature"] == textgen.thinking_signature(block["thinking"])


def test_anthropic_thinking_reaches_gemini_as_a_thinking_budget() -> None:
    h = Harness()
    response, _ = h.post("/v1/messages", {"model": "gemini-2.5-pro", "max_tokens": 3000, "messages": HI,
                                          "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert response.code == 200
    config = _upstream_bodies(h, "generateContent")[-1]["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] == 1024


def test_claude_code_telemetry_is_swallowed() -> None:
    h = Harness()
    response, body = h.post("/api/event_logging/batch", {"events": [{"x": 1}]}, token=None)
    assert response.code == 200 and json.loads(body) == {}


def test_tenant_header_when_the_service_key_has_a_zone() -> None:
    import attrs

    h = Harness()
    account = h.config.subaccounts["main"]
    zoned = attrs.evolve(account, service_key=attrs.evolve(account.service_key, identityzoneid="zone-1"))
    h2 = Harness(subaccounts={"main": zoned})
    h2.post(CHAT, {"model": "gpt-4.1", "messages": HI})
    upstream = [r for r in h2.simulator.requests if "/chat/completions" in r["path"]][-1]
    assert upstream["headers"]["ai-tenant-id"] == "zone-1"
    assert upstream["headers"]["ai-resource-group"] == "default"
    assert upstream["headers"]["authorization"].startswith("Bearer ")


def _two_deployments(h: Harness) -> dict:
    import attrs

    account = h.config.subaccounts["main"]
    url = account.deployment_models["gpt-4.1"][0]
    return {"main": attrs.evolve(account, deployment_models={**account.deployment_models, "gpt-4.1": (url, url)})}


def test_headers_timeout_fails_over_instead_of_looking_like_a_hang_up() -> None:
    from sapproxy.config import Timeouts

    base = Harness()
    h = Harness(timeouts=Timeouts(headers=5), subaccounts=_two_deployments(base))
    h.post(CHAT, {"model": "gpt-4.1", "messages": HI})  # a token first
    h.simulator.faults.set("d-gpt41", "slow_headers", count=1, delay=60)
    results: list = []
    h.client.request("POST", "http://gw.test" + CHAT, data=json.dumps({"model": "gpt-4.1", "messages": HI}).encode(),
                     headers={"Authorization": "Bearer sk-test"}).addBoth(results.append)
    for _ in range(10):
        h.flush()
        h.client.flush()
    assert not results
    h.clock.advance(5)
    for _ in range(50):
        if results:
            break
        h.flush()
        h.client.flush()
        h.clock.advance(0.1)
    (response,) = results
    assert response.code == 200
    row = h.rows.rows[-1]
    assert (row.status, row.attempts, row.failovers, row.client_hung_up) == (200, 2, 0, False)
