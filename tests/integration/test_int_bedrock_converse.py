"""
Bedrock's Converse API through the real daemon: a Claude model with C{converse: true} and Amazon Nova (a model
invoke cannot serve) on a vendor Bedrock provider, signed with SigV4 (credentials from a boto3 profile), the
simulator answering C{converse-stream} in AWS event-stream frames as Bedrock does.  OpenAI and Anthropic
clients, streamed and not, each with its usage row; a mid-stream exception frame becomes the client's error
event.  boto3's own C{converse_stream} reads the simulator's stream too, so both ends agree with AWS's client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from daemon_harness import (
    Gateway, Simulator, gateway_config, sse_data, sse_events, start_gateway, start_simulator, subaccount,
)

from sapproxy.simulator import vendors

pytestmark = pytest.mark.integration

CLAUDE_ID = "anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA_ID = "amazon.nova-pro-v1:0"


class Stack:
    def __init__(self, sim: Simulator, gateway: Gateway) -> None:
        self.sim = sim
        self.gateway = gateway

    def sent(self, model_id: str) -> dict[str, Any]:
        found = [r for r in self.sim.requests() if r["path"].startswith("/model/" + model_id.replace(":", "%3A"))]
        assert found, f"no request for {model_id}"
        return found[-1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("converse")
    credentials = directory / "aws-credentials"
    credentials.write_text(f"[sim]\naws_access_key_id = {vendors.AWS_ACCESS_KEY}\n"
                           f"aws_secret_access_key = {vendors.AWS_SECRET_KEY}\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(directory / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
           "AWS_PROFILE": ""}
    sim = start_simulator(directory)
    try:
        aws = {"kind": "bedrock", "region": "eu-central-1", "endpoint_url": sim.base, "profile": "sim",
               "models": {"claude-conv": {"upstream_model": CLAUDE_ID, "converse": True}, "nova-pro": NOVA_ID}}
        config = gateway_config(directory, {"acct1": subaccount(sim, {"gpt-4.1": "d-gpt41"})},
                                providers={"aws": aws})
        gateway = start_gateway(directory, config, env=env)
        try:
            yield Stack(sim, gateway)
        finally:
            gateway.daemon.stop()
    finally:
        sim.daemon.stop()


def chat(gateway: Gateway, model: str, text: str, **extra: Any) -> Any:
    return gateway.post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": text}],
                                                 **extra})


def messages(gateway: Gateway, model: str, text: str, **extra: Any) -> Any:
    return gateway.post("/v1/messages", {"model": model, "max_tokens": 300,
                                         "messages": [{"role": "user", "content": text}], **extra})


def row(stack: Stack, model: str, dialect_stream: tuple[str, int]) -> dict[str, Any]:
    dialect, stream = dialect_stream
    rows = stack.gateway.wait_usage_rows(1, "model_requested = ? AND dialect = ? AND stream = ?",
                                         (model, dialect, stream))
    assert rows, f"no usage row for {model} {dialect} stream={stream}"
    found = rows[-1]
    assert found["subaccount"] == "aws" and found["status"] == 200 and not found["tokens_estimated"]
    return found


def test_int_openai_client_streams_nova_through_converse_stream(stack: Stack) -> None:
    reply = chat(stack.gateway, "nova-pro", 'hello nova #sim{"events": 4}', stream=True,
                 stream_options={"include_usage": True})
    assert reply.status == 200, reply
    chunks = [json.loads(d) for d in sse_data(reply.body) if d != "[DONE]"]
    assert sse_data(reply.body)[-1] == "[DONE]"
    text = "".join((c["choices"][0].get("delta") or {}).get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("Echo: hello nova")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] > 0
    assert {c["model"] for c in chunks} == {"nova-pro"}
    sent = stack.sent(NOVA_ID)
    assert sent["path"] == "/model/amazon.nova-pro-v1%3A0/converse-stream"
    assert sent["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={vendors.AWS_ACCESS_KEY}/")
    assert sent["body"]["messages"][0]["content"][0]["text"].startswith("hello nova")
    usage = chunks[-1]["usage"]
    found = row(stack, "nova-pro", ("openai", 1))
    assert (found["prompt_tokens"], found["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])


def test_int_openai_client_without_a_stream_and_top_k_for_nova(stack: Stack) -> None:
    reply = chat(stack.gateway, "nova-pro", "plain nova")
    assert reply.status == 200, reply
    body = reply.json()
    assert body["model"] == "nova-pro" and body["choices"][0]["message"]["content"].startswith("Echo: plain nova")
    assert stack.sent(NOVA_ID)["path"] == "/model/amazon.nova-pro-v1%3A0/converse"
    found = row(stack, "nova-pro", ("openai", 0))
    assert found["prompt_tokens"] == body["usage"]["prompt_tokens"] > 0
    assert found["completion_tokens"] == body["usage"]["completion_tokens"] > 0
    # Anthropic's top_k reaches Nova as its own inferenceConfig.topK (the simulator refuses top_k there).
    reply = messages(stack.gateway, "nova-pro", "anthropic on nova", top_k=7)
    assert reply.status == 200, reply
    assert reply.json()["content"][0]["text"].startswith("Echo: anthropic on nova")
    assert stack.sent(NOVA_ID)["body"]["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 7}}


def test_int_anthropic_client_streams_claude_through_converse_stream(stack: Stack) -> None:
    reply = messages(stack.gateway, "claude-conv", 'hello converse #sim{"events": 3}', stream=True)
    assert reply.status == 200, reply
    events = sse_events(reply.body)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert json.loads(events[0][1])["message"]["model"] == "claude-conv"
    text = "".join(json.loads(d)["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert text.startswith("Echo: hello converse")
    delta = next(json.loads(d) for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] > 0
    assert stack.sent(CLAUDE_ID)["path"] == "/model/" + CLAUDE_ID.replace(":", "%3A") + "/converse-stream"
    found = row(stack, "claude-conv", ("anthropic", 1))
    assert found["completion_tokens"] == delta["usage"]["output_tokens"] and found["prompt_tokens"] > 0


def test_int_anthropic_client_without_a_stream_on_converse(stack: Stack) -> None:
    reply = messages(stack.gateway, "claude-conv", "hello plain converse")
    assert reply.status == 200, reply
    body = reply.json()
    assert body["type"] == "message" and body["model"] == "claude-conv"
    assert body["content"][0]["text"].startswith("Echo: hello plain converse")
    assert stack.sent(CLAUDE_ID)["path"].endswith("/converse")
    found = row(stack, "claude-conv", ("anthropic", 0))
    assert (found["prompt_tokens"], found["completion_tokens"]) == (body["usage"]["input_tokens"],
                                                                    body["usage"]["output_tokens"])


def test_int_a_mid_stream_exception_frame_is_the_clients_error_event(stack: Stack) -> None:
    stack.sim.arm(vendors.VENDOR_IDS["bedrock"], "error_mid_stream", fault_after=3)
    try:
        reply = messages(stack.gateway, "claude-conv", 'break please #sim{"events": 8}', stream=True)
    finally:
        stack.sim.clear_faults()
    assert reply.status == 200, reply
    events = sse_events(reply.body)
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert json.loads(events[-1][1])["error"] == {"type": "api_error", "message": "Model Stream Error"}
    rows = stack.gateway.wait_usage_rows(1, "model_requested = ? AND error_type IS NOT NULL", ("claude-conv",))
    assert rows and rows[-1]["error_type"] == "api_error"


def test_int_boto3_reads_the_simulators_converse_stream(stack: Stack) -> None:
    import boto3

    client = boto3.client("bedrock-runtime", region_name="eu-central-1", endpoint_url=stack.sim.base,
                          aws_access_key_id=vendors.AWS_ACCESS_KEY, aws_secret_access_key=vendors.AWS_SECRET_KEY)
    response = client.converse_stream(modelId=NOVA_ID, messages=[{"role": "user", "content": [{"text": "from boto3"}]}])
    events = list(response["stream"])
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text.startswith("Echo: from boto3")
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0


def test_int_responses_client_on_nova(stack: Stack) -> None:
    reply = stack.gateway.post("/v1/responses", {"model": "nova-pro", "input": "responses on nova"})
    assert reply.status == 200, reply
    body = reply.json()
    text = "".join(part.get("text", "") for item in body["output"] if item["type"] == "message"
                   for part in item["content"])
    assert text.startswith("Echo: responses on nova") and body["usage"]["input_tokens"] > 0
    assert stack.sent(NOVA_ID)["path"].endswith("/converse")
