"""
Client authentication and the error shapes of the edges (no route, wrong method, bad JSON), over real sockets,
in each API's own dialect.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

import pytest
from daemon_harness import SIM_CLIENT_SECRET, TOKEN, Reply, Stack, http_request, running_stack

pytestmark = pytest.mark.integration

HASHED_TOKEN = "sk-int-hashed-token-abcdef"
HASHED_ENTRY = "sha256:" + hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()

CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "auth"}]}
MESSAGES = {"model": "anthropic--claude-4.5-haiku", "max_tokens": 64, "messages": [{"role": "user", "content": "auth"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("auth"), secret_authentication_tokens=[TOKEN, HASHED_ENTRY]) as s:
        yield s


def _openai_error(reply: Reply, status: int, error_type: str) -> dict[str, Any]:
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code"} <= set(error), error
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and error["message"]
    return error


def _anthropic_error(reply: Reply, status: int, error_type: str) -> dict[str, Any]:
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"x-api-key": "wrong-key"},
                                     {"Authorization": "Basic " + TOKEN}, {"Authorization": "Bearer "}])
def test_int_auth_openai_route_401(stack: Stack, headers: dict[str, str]) -> None:
    reply = stack.gateway.post("/v1/chat/completions", CHAT, headers=headers)
    error = _openai_error(reply, 401, "authentication_error")
    assert error["code"] == "invalid_api_key"
    assert "wrong-key" not in error["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"x-api-key": "wrong-key"}])
def test_int_auth_anthropic_route_401(stack: Stack, headers: dict[str, str]) -> None:
    reply = stack.gateway.post("/v1/messages", MESSAGES, headers=headers)
    _anthropic_error(reply, 401, "authentication_error")
    reply = stack.gateway.post("/v1/messages/count_tokens", MESSAGES, headers=headers)
    _anthropic_error(reply, 401, "authentication_error")


def test_int_auth_models_needs_key(stack: Stack) -> None:
    _openai_error(stack.gateway.get("/v1/models", headers={}), 401, "authentication_error")
    assert stack.gateway.get("/v1/models").status == 200


@pytest.mark.parametrize("token", [TOKEN, HASHED_TOKEN], ids=["plain", "sha256"])
@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_int_auth_accepted(stack: Stack, token: str, style: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if style == "bearer" else {"x-api-key": token}
    reply = stack.gateway.post("/v1/chat/completions", CHAT, headers=headers)
    assert reply.status == 200, reply
    assert reply.json()["choices"][0]["message"]["content"].startswith("Echo: auth")
    reply = stack.gateway.post("/v1/messages", MESSAGES, headers=headers)
    assert reply.status == 200, reply
    assert reply.json()["content"][0]["text"].startswith("Echo: auth")


def test_int_auth_sha256_entry_itself_is_not_a_key(stack: Stack) -> None:
    for presented in (HASHED_ENTRY, HASHED_ENTRY[7:]):
        reply = stack.gateway.post("/v1/chat/completions", CHAT, headers={"Authorization": f"Bearer {presented}"})
        _openai_error(reply, 401, "authentication_error")


def test_int_health_reveals_no_secret(stack: Stack) -> None:
    # Make sure a token was fetched first, so there is an XSUAA token the health page could leak.
    assert stack.gateway.post("/v1/chat/completions", CHAT).status == 200
    upstream_tokens = {r["headers"]["authorization"].split()[-1] for r in stack.sim.inference_requests()}
    assert upstream_tokens
    reply = http_request("GET", stack.base + "/health")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["subaccounts"]["simulated"]["token"] == "valid"
    text = reply.body.decode()
    for secret in (SIM_CLIENT_SECRET, TOKEN, HASHED_TOKEN, HASHED_ENTRY[7:], *upstream_tokens):
        assert secret not in text, f"/health leaks {secret[:6]}..."


def test_int_unknown_route_404_json(stack: Stack) -> None:
    reply = stack.gateway.get("/v1/nonexistent")
    error = _openai_error(reply, 404, "not_found_error")
    assert "/v1/nonexistent" in error["message"]
    reply = stack.gateway.post("/v1/messages/nonexistent", {})
    _anthropic_error(reply, 404, "not_found_error")


def test_int_wrong_method_405_json(stack: Stack) -> None:
    reply = stack.gateway.get("/v1/chat/completions")
    error = _openai_error(reply, 405, "invalid_request_error")
    assert "GET" in error["message"]
    assert "POST" in reply.headers.get("allow", "")
    reply = stack.gateway.get("/v1/messages")
    _anthropic_error(reply, 405, "invalid_request_error")
    assert "POST" in reply.headers.get("allow", "")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"], ids=["broken", "empty", "array", "utf8"])
def test_int_malformed_json_400(stack: Stack, raw: bytes) -> None:
    reply = stack.gateway.post("/v1/chat/completions", None, raw=raw,
                               headers={**stack.gateway.headers(), "Content-Type": "application/json"})
    _openai_error(reply, 400, "invalid_request_error")
    reply = stack.gateway.post("/v1/messages", None, raw=raw,
                               headers={"x-api-key": TOKEN, "Content-Type": "application/json"})
    _anthropic_error(reply, 400, "invalid_request_error")
