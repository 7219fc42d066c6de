"""
Every provider kind through the real daemon against the simulator's vendor APIs: OpenAI-compatible (chat and
embeddings), Azure OpenAI, Anthropic (an Anthropic client's stream passes through), Bedrock (SigV4 verified
by the simulator with botocore, credentials from a boto3 profile) and the Gemini API; SAP first, then the
vendor when the subaccount fails, as the usage row and the log line say; a refused key is a 502 and a failing
provider in /health; no secret in logs, /health, /metrics or error bodies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from daemon_harness import (
    Gateway, Simulator, gateway_config, http_request, sse_data, sse_events, start_gateway, start_simulator, subaccount,
)

from sapproxy.simulator import vendors

pytestmark = pytest.mark.integration

BEDROCK_ID = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SECRETS = (vendors.OPENAI_KEY, vendors.AZURE_KEY, vendors.ANTHROPIC_KEY, vendors.GEMINI_KEY, vendors.AWS_SECRET_KEY)


def providers(sim: Simulator, service_account: Path) -> dict[str, Any]:
    return {
        "vertex": {"kind": "gemini", "models": {"gemini-vertex": "gemini-2.5-pro"},
                   "vertex": {"project": "sim-project", "location": "europe-west4", "endpoint_url": sim.base,
                              "service_account_file": service_account.name}},
        "local": {"kind": "openai", "base_url": sim.base + "/v1", "api_key": "env:SAPPROXY_TEST_OPENAI_KEY",
                  "headers": {"X-Team": "platform"},
                  "models": {"llama": "llama3.2", "gpt-4.1": "gpt-4.1", "embed-local": "nomic-embed-text"}},
        "azure": {"kind": "azure-openai", "endpoint": sim.base, "api_key": vendors.AZURE_KEY,
                  "api_version": "2024-10-21", "deployments": {"gpt-4o-azure": "my-gpt4o"}},
        "claude": {"kind": "anthropic", "base_url": sim.base, "api_key": vendors.ANTHROPIC_KEY,
                   "betas": ["context-1m-2025-08-07"], "models": {"claude-vendor": "claude-sonnet-4-5"}},
        "aws": {"kind": "bedrock", "region": "eu-central-1", "endpoint_url": sim.base, "profile": "sim",
                "models": {"claude-aws": BEDROCK_ID}},
        "google": {"kind": "gemini", "base_url": sim.base + "/v1beta", "api_key": vendors.GEMINI_KEY,
                   "models": {"gemini-vendor": "gemini-2.5-flash"}},
        "badkey": {"kind": "openai", "base_url": sim.base + "/v1", "api_key": "sk-wrong-0123456789",
                   "models": {"only-bad": "gpt-4.1"}},
        "aws-wrong": {"kind": "bedrock", "region": "eu-central-1", "endpoint_url": sim.base, "profile": "wrong",
                      "models": {"claude-aws-wrong": BEDROCK_ID}},
        "aws-none": {"kind": "bedrock", "region": "eu-central-1", "endpoint_url": sim.base, "profile": "missing",
                     "models": {"claude-aws-none": BEDROCK_ID}},
    }


class Stack:
    def __init__(self, sim: Simulator, gateway: Gateway) -> None:
        self.sim = sim
        self.gateway = gateway

    def vendor_requests(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.sim.requests() if r["path"] == path or r["path"].startswith(path)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("providers")
    credentials = directory / "aws-credentials"
    credentials.write_text(f"[sim]\naws_access_key_id = {vendors.AWS_ACCESS_KEY}\n"
                           f"aws_secret_access_key = {vendors.AWS_SECRET_KEY}\n"
                           f"[wrong]\naws_access_key_id = {vendors.AWS_ACCESS_KEY}\n"
                           "aws_secret_access_key = not-the-secret-key-0123456789\n")
    saved = {k: os.environ.get(k) for k in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                                            "AWS_EC2_METADATA_DISABLED", "SAPPROXY_TEST_OPENAI_KEY",
                                            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")}
    os.environ.update({"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(directory / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true", "SAPPROXY_TEST_OPENAI_KEY": vendors.OPENAI_KEY})
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        os.environ.pop(k, None)
    sim = start_simulator(directory)
    try:
        service_account = directory / "vertex-sa.json"
        service_account.write_text(json.dumps({
            "type": "service_account", "project_id": "sim-project", "private_key_id": "k1",
            "private_key": vendors.GOOGLE_PRIVATE_KEY, "client_email": vendors.GOOGLE_SERVICE_ACCOUNT,
            "client_id": "1", "token_uri": sim.base + "/token"}))
        config = gateway_config(directory, {"acct1": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                                providers=providers(sim, service_account))
        gateway = start_gateway(directory, config)
        try:
            yield Stack(sim, gateway)
        finally:
            gateway.daemon.stop()
    finally:
        sim.daemon.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def chat(gateway: Gateway, model: str, text: str, **extra: Any) -> Any:
    return gateway.post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": text}],
                                                 **extra})


def messages(gateway: Gateway, model: str, text: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    return gateway.post("/v1/messages", {"model": model, "max_tokens": 200,
                                         "messages": [{"role": "user", "content": text}], **extra},
                        headers=gateway.headers(**(headers or {})))


def streamed_text(body: bytes) -> str:
    out = ""
    for data in sse_data(body):
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        for choice in chunk.get("choices") or []:
            out += (choice.get("delta") or {}).get("content") or ""
    return out


def anthropic_text(body: bytes) -> str:
    return "".join(json.loads(d)["delta"].get("text", "") for name, d in sse_events(body)
                   if name == "content_block_delta")


def last(stack: Stack, path: str) -> dict[str, Any]:
    found = stack.vendor_requests(path)
    assert found, f"no request to {path}"
    return found[-1]


def test_int_openai_compatible_chat_stream_and_embeddings(stack: Stack) -> None:
    reply = chat(stack.gateway, "llama", "hello local")
    assert reply.status == 200, reply
    assert reply.json()["model"] == "llama"
    assert reply.json()["choices"][0]["message"]["content"].startswith("Echo: hello local")
    sent = last(stack, "/v1/chat/completions")
    assert sent["body"]["model"] == "llama3.2"
    assert sent["headers"]["authorization"] == "Bearer " + vendors.OPENAI_KEY
    assert sent["headers"]["x-team"] == "platform"
    reply = chat(stack.gateway, "llama", "stream local", stream=True)
    assert reply.status == 200 and streamed_text(reply.body).startswith("Echo: stream local")
    assert sse_data(reply.body)[-1] == "[DONE]"
    reply = stack.gateway.post("/v1/embeddings", {"model": "embed-local", "input": ["a", "b"]})
    assert reply.status == 200, reply
    assert reply.json()["model"] == "embed-local" and len(reply.json()["data"]) == 2
    assert last(stack, "/v1/embeddings")["body"]["model"] == "nomic-embed-text"
    # An Anthropic client on an OpenAI-compatible model: translated both ways.
    reply = messages(stack.gateway, "llama", "anthropic on llama", stream=True)
    assert reply.status == 200 and anthropic_text(reply.body).startswith("Echo: anthropic on llama")


def test_int_azure_openai(stack: Stack) -> None:
    reply = chat(stack.gateway, "gpt-4o-azure", "hello azure")
    assert reply.status == 200, reply
    assert reply.json()["choices"][0]["message"]["content"].startswith("Echo: hello azure")
    sent = last(stack, "/openai/deployments/my-gpt4o/chat/completions")
    assert sent["query"]["api-version"] == "2024-10-21" and sent["headers"]["api-key"] == vendors.AZURE_KEY


def test_int_anthropic_passthrough_and_betas(stack: Stack) -> None:
    reply = messages(stack.gateway, "claude-vendor", "hello claude", stream=True,
                     headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    assert reply.status == 200, reply
    events = sse_events(reply.body)
    assert events[0][0] == "message_start" and json.loads(events[0][1])["message"]["model"] == "claude-vendor"
    assert events[-1][0] == "message_stop"
    assert anthropic_text(reply.body).startswith("Echo: hello claude")
    sent = last(stack, "/v1/messages")
    assert sent["body"]["model"] == "claude-sonnet-4-5" and sent["body"]["stream"] is True
    assert "anthropic_version" not in sent["body"]
    assert sent["headers"]["x-api-key"] == vendors.ANTHROPIC_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["anthropic-beta"] == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    reply = chat(stack.gateway, "claude-vendor", "openai on claude")
    assert reply.status == 200 and reply.json()["choices"][0]["message"]["content"].startswith("Echo: openai on claude")


def test_int_bedrock_signed_invoke_and_stream(stack: Stack) -> None:
    reply = messages(stack.gateway, "claude-aws", "hello bedrock")
    assert reply.status == 200, reply
    assert reply.json()["model"] == "claude-aws" and reply.json()["content"][0]["text"].startswith("Echo: hello bedrock")
    reply = chat(stack.gateway, "claude-aws", "stream bedrock", stream=True)
    assert reply.status == 200 and streamed_text(reply.body).startswith("Echo: stream bedrock")
    sent = last(stack, "/model/")
    # As boto3 sends it: the model id percent-encoded in the path (and signed that way).
    assert sent["path"] == "/model/" + BEDROCK_ID.replace(":", "%3A") + "/invoke-with-response-stream"
    assert sent["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={vendors.AWS_ACCESS_KEY}/")
    health = stack.gateway.health()["subaccounts"]["aws"]
    assert health["credentials"] == "valid" and health["resolutions"] == 1


def test_int_gemini_api(stack: Stack) -> None:
    reply = chat(stack.gateway, "gemini-vendor", "hello gemini", stream=True)
    assert reply.status == 200 and streamed_text(reply.body).startswith("Echo: hello gemini")
    sent = last(stack, "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    assert sent["headers"]["x-goog-api-key"] == vendors.GEMINI_KEY and sent["query"]["alt"] == "sse"


def test_int_vertex_with_a_service_account(stack: Stack) -> None:
    for text in ("hello vertex", "again"):
        reply = chat(stack.gateway, "gemini-vertex", text, stream=True)
        assert reply.status == 200 and streamed_text(reply.body).startswith("Echo: " + text), reply
    sent = last(stack, "/v1/projects/sim-project/locations/europe-west4/publishers/google/models/gemini-2.5-pro:")
    assert sent["headers"]["authorization"].startswith("Bearer ya29.sim-")
    assert len([r for r in stack.sim.requests() if r["path"] == "/token"]) == 1  # one token, reused
    health = stack.gateway.health()["subaccounts"]["vertex"]
    assert health["token"] == "valid" and health["fetches"] == 1 and health["credentials"] == "ok"
    assert "ya29" not in json.dumps(health)


def test_int_models_and_health_list_every_provider(stack: Stack) -> None:
    ids = {m["id"] for m in stack.gateway.get("/v1/models").json()["data"]}
    assert {"gpt-4.1", "llama", "embed-local", "gpt-4o-azure", "claude-vendor", "claude-aws", "gemini-vendor"} <= ids
    health = stack.gateway.health()["subaccounts"]
    assert {"acct1", "local", "azure", "claude", "aws", "google", "badkey"} <= set(health)
    assert health["local"]["kind"] == "openai" and health["aws"]["kind"] == "bedrock"


def test_int_sap_first_then_the_vendor(stack: Stack) -> None:
    stack.sim.arm("d-gpt41", "503", 20)
    try:
        reply = chat(stack.gateway, "gpt-4.1", "fall back please")
    finally:
        stack.sim.clear_faults()
    assert reply.status == 200, reply
    assert reply.json()["choices"][0]["message"]["content"].startswith("Echo: fall back please")
    rows = stack.gateway.wait_usage_rows(1, "model_requested = ? AND status = 200 AND subaccount = ?",
                                         ("gpt-4.1", "local"))
    assert rows and rows[-1]["failovers"] >= 1
    assert any("POST /v1/chat/completions 200 gpt-4.1" in line and "via local after" in line
               for line in stack.gateway.log_text().splitlines())
    # Healthy again: SAP serves first.
    reply = chat(stack.gateway, "gpt-4.1", "sap again")
    assert reply.status == 200
    rows = stack.gateway.wait_usage_rows(1, "model_requested = ? AND subaccount = ?", ("gpt-4.1", "acct1"))
    assert rows


def test_int_refused_credentials_are_a_502_and_failing_in_health(stack: Stack) -> None:
    reply = chat(stack.gateway, "only-bad", "who am i")
    assert reply.status == 502, reply
    assert "sk-wrong" not in reply.body.decode()
    health = stack.gateway.health()["subaccounts"]["badkey"]
    assert health["credentials"] == "failing"


def test_int_bedrock_signature_refused_is_a_502_and_failing_in_health(stack: Stack) -> None:
    reply = messages(stack.gateway, "claude-aws-wrong", "wrong secret")
    assert reply.status == 502, reply
    assert reply.json()["error"]["type"] == "api_error" and "aws-wrong" in reply.json()["error"]["message"]
    assert stack.gateway.health()["subaccounts"]["aws-wrong"]["credentials"] == "failing"


def test_int_bedrock_without_credentials_is_a_502_and_failing_in_health(stack: Stack) -> None:
    # Resolved at start-up: failing before any request asked.
    before = stack.gateway.health()["subaccounts"]["aws-none"]
    assert before["credentials"] == "failing" and before["resolutions"] >= 1
    reply = chat(stack.gateway, "claude-aws-none", "no credentials")
    assert reply.status == 502, reply
    assert "missing" in reply.json()["error"]["message"]
    health = stack.gateway.health()["subaccounts"]["aws-none"]
    assert health["credentials"] == "failing" and "missing" in health["last_error"]
    # No request reached the simulator for it.
    assert not [r for r in stack.sim.requests() if "no credentials" in json.dumps(r.get("body"))]


def test_int_no_secret_anywhere(stack: Stack) -> None:
    texts = [stack.gateway.log_text(), json.dumps(stack.gateway.health()),
             http_request("GET", stack.gateway.base + "/metrics").body.decode()]
    for text in texts:
        for secret in SECRETS + ("sk-wrong-0123456789", "not-the-secret-key-0123456789"):
            assert secret not in text


def test_int_a_reload_adds_a_provider_and_keeps_resolved_credentials(stack: Stack) -> None:
    import signal
    import time

    config = json.loads(stack.gateway.config_path.read_text())
    config["providers"]["late"] = {"kind": "openai", "base_url": stack.sim.base + "/v1",
                                   "api_key": vendors.OPENAI_KEY, "models": {"late-model": "gpt-4o"}}
    stack.gateway.config_path.write_text(json.dumps(config))
    os.kill(stack.gateway.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "late" not in stack.gateway.health()["subaccounts"] and time.monotonic() < deadline:
        time.sleep(0.05)
    reply = chat(stack.gateway, "late-model", "after reload")
    assert reply.status == 200 and reply.json()["choices"][0]["message"]["content"].startswith("Echo: after reload")
    assert stack.gateway.health()["subaccounts"]["aws"]["resolutions"] == 1
