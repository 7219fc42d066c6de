"""
The simulator's vendor Bedrock runtime serves C{/converse} and C{/converse-stream} as AWS does: SigV4 verified,
the Converse body validated as strictly as the SAP converse simulator does, and the stream in AWS event-stream
frames (C{:event-type} naming each ConverseStream event).  The frames are read here with botocore's own parser
and the bedrock-runtime service model, as boto3's C{converse_stream} reads them, so the simulator cannot drift
into a framing only this gateway understands.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from botocore.eventstream import EventStreamBuffer

from sapproxy.simulator import vendors
from sapproxy.upstreams.aws import FrozenCredentials
from simhelp import Driver
from test_sim_vendors import signed

GOOD = FrozenCredentials(vendors.AWS_ACCESS_KEY, vendors.AWS_SECRET_KEY)
NOVA = "/model/amazon.nova-pro-v1%3A0/converse-stream"
CLAUDE = "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"


def converse(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 200},
            **extra}


def post(d: Driver, path: str, body: Any, creds: FrozenCredentials | None = GOOD) -> Any:
    headers = signed(d, path, body, creds) if creds is not None else {"content-type": "application/json"}
    return d.request("POST", path, body=body, headers=headers)


def frames(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(message.headers, message.payload) for message in buffer]


def boto3_events(data: bytes) -> list[dict[str, Any]]:
    """The events boto3's C{converse_stream} hands its caller for these bytes (exceptions raise)."""
    import botocore.session
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser

    shape = botocore.session.get_session().get_service_model("bedrock-runtime") \
        .operation_model("ConverseStream").output_shape.members["stream"]

    class Raw:
        def stream(self) -> Iterator[bytes]:
            yield data

        def close(self) -> None:
            pass

    return list(EventStream(Raw(), shape, EventStreamJSONParser(), "ConverseStream"))


def test_converse_stream_is_an_aws_event_stream_of_converse_events() -> None:
    d = Driver()
    r = post(d, NOVA, converse('hi #sim{"events": 3}'))
    assert r.status == 200, r.body
    assert r.header("content-type") == "application/vnd.amazon.eventstream"
    raw = frames(r.body)
    assert all(h[":message-type"] == "event" and h[":content-type"] == "application/json" for h, _ in raw)
    # Bedrock pads every payload with "p", which clients drop.
    assert all("p" in json.loads(payload) for _, payload in raw)
    events = boto3_events(r.body)
    names = [next(iter(e)) for e in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert [h[":event-type"] for h, _ in raw] == names
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text.startswith("Echo: hi")
    usage = events[-1]["metadata"]["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"


def test_claude_through_converse_stream_with_thinking() -> None:
    d = Driver()
    body = converse("think first", inferenceConfig={"maxTokens": 3000},
                    additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    r = post(d, CLAUDE, body)
    assert r.status == 200, r.body
    events = boto3_events(r.body)
    reasoning = [e["contentBlockDelta"]["delta"]["reasoningContent"] for e in events
                 if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})]
    assert any("text" in part for part in reasoning) and any("signature" in part for part in reasoning)


def test_converse_is_signed_and_validated_like_invoke_and_sap_converse() -> None:
    d = Driver()
    r = post(d, NOVA, converse("hi"), creds=None)
    assert r.status == 403 and r.json()["message"] == "Missing Authentication Token"
    r = post(d, NOVA, converse("hi"), creds=FrozenCredentials(vendors.AWS_ACCESS_KEY, "wrong"))
    assert r.status == 403 and r.header("x-amzn-errortype").startswith("InvalidSignatureException")
    # The SAP converse simulator's validation: an unknown key, a conversation that starts with the assistant.
    r = post(d, NOVA, {**converse("hi"), "stream": True})
    assert r.status == 400 and r.header("x-amzn-errortype").startswith("ValidationException")
    assert "extraneous key [stream]" in r.json()["message"]
    r = post(d, NOVA, {"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]})
    assert r.status == 400 and "must start with a user message" in r.json()["message"]
    # Anthropic's request fields on a model that is not Claude.
    r = post(d, NOVA, converse("hi", additionalModelRequestFields={"thinking": {"type": "enabled",
                                                                               "budget_tokens": 1024}}))
    assert r.status == 400 and "extraneous key [thinking]" in r.json()["message"]
    r = post(d, NOVA, converse("hi", additionalModelRequestFields={"inferenceConfig": {"topK": 5}}))
    assert r.status == 200
    r = post(d, "/model/meta.llama3-3-70b-instruct-v1%3A0/converse", converse("hi",
             additionalModelRequestFields={"top_k": 5}))
    assert r.status == 400 and "extraneous key [top_k]" in r.json()["message"]
    # Non-stream converse answers JSON.
    r = post(d, "/model/meta.llama3-3-70b-instruct-v1%3A0/converse", converse("plain"))
    assert r.status == 200 and r.json()["output"]["message"]["content"][0]["text"].startswith("Echo: plain")
    r = post(d, "/model/amazon.nova-pro-v1%3A0/converse-streams", converse("hi"))
    assert r.status == 404


def test_a_mid_stream_failure_is_an_exception_frame() -> None:
    d = Driver()
    d.sim.faults.set(vendors.VENDOR_IDS["bedrock"], "error_mid_stream", fault_after=2)
    r = post(d, NOVA, converse('hi #sim{"events": 6}'))
    assert r.status == 200
    raw = frames(r.body)
    headers, payload = raw[-1]
    assert headers[":message-type"] == "exception" and headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(payload)["message"] == "Model Stream Error"
    assert all(h[":message-type"] == "event" for h, _ in raw[:-1]) and len(raw) >= 2


def test_sap_converse_stream_stays_sse() -> None:
    d = Driver()
    r = d.post("d-sonnet", "converse-stream", converse("hi"))
    assert r.status == 200 and r.header("content-type").startswith("text/event-stream")
    assert r.body.startswith(b"data: {")
