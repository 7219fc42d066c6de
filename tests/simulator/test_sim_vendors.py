"""
The vendors' own APIs in the simulator: each refuses what the real one refuses (keys, versions, signatures)
and answers in its own shape.
"""

from __future__ import annotations

import json
from typing import Any

from sapproxy.simulator import vendors
from sapproxy.upstreams.aws import FrozenCredentials, SigV4Signer
from simhelp import BASE, Driver, sse_events, sse_json, user

OPENAI = {"Authorization": "Bearer " + vendors.OPENAI_KEY, "Content-Type": "application/json"}
ANTHROPIC = {"x-api-key": vendors.ANTHROPIC_KEY, "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def test_openai_compatible_chat_needs_the_bearer_key_and_a_known_model() -> None:
    d = Driver()
    r = d.request("POST", "/v1/chat/completions", body={"model": "gpt-4.1", **user("hi")})
    assert r.status == 401 and "didn't provide an API key" in r.json()["error"]["message"]
    r = d.request("POST", "/v1/chat/completions", body={"model": "gpt-4.1", **user("hi")},
                  headers={"Authorization": "Bearer sk-wrong"})
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = d.request("POST", "/v1/chat/completions", body=user("hi"), headers=OPENAI)
    assert r.status == 400 and r.json()["error"]["message"] == "you must provide a model parameter"
    r = d.request("POST", "/v1/chat/completions", body={"model": "nope", **user("hi")}, headers=OPENAI)
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
    r = d.request("POST", "/v1/chat/completions", body={"model": "llama3.2", **user('hi #sim{"events": 2}')},
                  headers=OPENAI)
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Echo: hi bravo"
    r = d.request("POST", "/v1/chat/completions", body={"model": "llama3.2", "stream": True,
                                                         **user('hi #sim{"events": 2}')}, headers=OPENAI)
    chunks = sse_json(r.body)
    assert "".join((c["choices"] or [{}])[0].get("delta", {}).get("content") or "" for c in chunks) == "Echo: hi bravo"
    assert sse_events(r.body)[-1][1] == "[DONE]"


def test_openai_compatible_embeddings_and_openai_shaped_errors() -> None:
    d = Driver()
    r = d.request("POST", "/v1/embeddings", body={"model": "text-embedding-3-small", "input": "x"}, headers=OPENAI)
    assert r.status == 200 and len(r.json()["data"][0]["embedding"]) > 0
    r = d.request("POST", "/v1/embeddings", body={"model": "text-embedding-3-small"}, headers=OPENAI)
    assert r.status == 400 and r.json()["error"]["type"] == "invalid_request_error"
    d.sim.faults.set(vendors.VENDOR_IDS["openai"], "429", retry_after=7)
    r = d.request("POST", "/v1/chat/completions", body={"model": "gpt-4.1", **user("hi")}, headers=OPENAI)
    assert r.status == 429 and r.header("retry-after") == "7" and r.json()["error"]["type"] == "rate_limit_error"


def test_azure_openai_needs_its_api_key_and_api_version() -> None:
    d = Driver()
    path = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    assert d.request("POST", path, body=user("hi"), headers={"api-key": "nope"}).status == 401
    r = d.request("POST", "/openai/deployments/my-gpt/chat/completions", body=user("hi"),
                  headers={"api-key": vendors.AZURE_KEY})
    assert r.status == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
    r = d.request("POST", path, body=user("hi"), headers={"api-key": vendors.AZURE_KEY})
    assert r.status == 200 and r.json()["choices"][0]["message"]["content"].startswith("Echo: hi")


def test_anthropic_messages_checks_key_version_and_body() -> None:
    d = Driver()
    assert d.request("POST", "/v1/messages", body=MESSAGES).json()["error"]["type"] == "authentication_error"
    r = d.request("POST", "/v1/messages", body=MESSAGES, headers={"x-api-key": vendors.ANTHROPIC_KEY})
    assert r.status == 400 and r.json()["error"]["message"] == "anthropic-version: header is required"
    r = d.request("POST", "/v1/messages", body={**MESSAGES, "anthropic_version": "bedrock-2023-05-31"},
                  headers=ANTHROPIC)
    assert r.status == 400 and "Extra inputs are not permitted" in r.json()["error"]["message"]
    r = d.request("POST", "/v1/messages", body={k: v for k, v in MESSAGES.items() if k != "max_tokens"},
                  headers=ANTHROPIC)
    assert r.status == 400 and r.json()["type"] == "error"
    r = d.request("POST", "/v1/messages", body=MESSAGES, headers=ANTHROPIC)
    assert r.status == 200, r.body
    assert r.json()["content"][0]["text"].startswith("Echo: hi") and r.json()["type"] == "message"


def test_anthropic_messages_streams_anthropic_sse_and_takes_betas_as_a_header() -> None:
    d = Driver()
    r = d.request("POST", "/v1/messages", body={**MESSAGES, "stream": True},
                  headers={**ANTHROPIC, "anthropic-beta": "context-1m-2025-08-07"})
    assert r.status == 200 and r.header("content-type").startswith("text/event-stream")
    names = [name for name, _ in sse_events(r.body)]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    r = d.request("POST", "/v1/messages", body=MESSAGES, headers={**ANTHROPIC, "anthropic-beta": "made-up-beta"})
    assert r.status == 400 and r.json()["error"]["type"] == "invalid_request_error"


def signed(d: Driver, path: str, body: Any, creds: FrozenCredentials, *, shift: float = 0.0) -> dict[str, str]:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    headers.update(SigV4Signer("eu-central-1").sign(creds, BASE + path, raw, headers, d.clock.seconds() + shift))
    return headers


INVOKE = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
MODEL_PATH = "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"


def test_bedrock_verifies_sigv4_with_botocore() -> None:
    d = Driver()
    good = FrozenCredentials(vendors.AWS_ACCESS_KEY, vendors.AWS_SECRET_KEY)
    r = d.request("POST", MODEL_PATH, body=INVOKE, headers=signed(d, MODEL_PATH, INVOKE, good))
    assert r.status == 200, r.body
    assert r.json()["content"][0]["text"].startswith("Echo: hi")
    temporary = FrozenCredentials(vendors.AWS_ACCESS_KEY, vendors.AWS_SECRET_KEY, vendors.AWS_SESSION_TOKEN)
    assert d.request("POST", MODEL_PATH, body=INVOKE, headers=signed(d, MODEL_PATH, INVOKE, temporary)).status == 200
    wrong = FrozenCredentials(vendors.AWS_ACCESS_KEY, "not-the-secret")
    r = d.request("POST", MODEL_PATH, body=INVOKE, headers=signed(d, MODEL_PATH, INVOKE, wrong))
    assert r.status == 403 and r.header("x-amzn-errortype").startswith("InvalidSignatureException")
    other = FrozenCredentials("AKIAOTHER", vendors.AWS_SECRET_KEY)
    r = d.request("POST", MODEL_PATH, body=INVOKE, headers=signed(d, MODEL_PATH, INVOKE, other))
    assert r.status == 403 and r.header("x-amzn-errortype").startswith("UnrecognizedClientException")
    r = d.request("POST", MODEL_PATH, body=INVOKE, headers=signed(d, MODEL_PATH, INVOKE, good, shift=-600))
    assert r.status == 403 and "Signature expired" in r.json()["message"]
    # A body changed after signing.
    headers = signed(d, MODEL_PATH, INVOKE, good)
    r = d.request("POST", MODEL_PATH, body={**INVOKE, "max_tokens": 51}, headers=headers)
    assert r.status == 403
    r = d.request("POST", MODEL_PATH, body=INVOKE)
    assert r.status == 403 and r.json()["message"] == "Missing Authentication Token"


def test_bedrock_stream_is_an_event_stream_and_converse_works() -> None:
    d = Driver()
    good = FrozenCredentials(vendors.AWS_ACCESS_KEY, vendors.AWS_SECRET_KEY)
    path = MODEL_PATH.replace("/invoke", "/invoke-with-response-stream")
    r = d.request("POST", path, body=INVOKE, headers=signed(d, path, INVOKE, good))
    assert r.status == 200 and r.header("content-type") == "application/vnd.amazon.eventstream"
    conv = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    path = "/model/amazon.nova-pro-v1%3A0/converse"
    r = d.request("POST", path, body=conv, headers=signed(d, path, conv, good))
    assert r.status == 200 and r.json()["output"]["message"]["content"][0]["text"].startswith("Echo: hi")


def test_gemini_api_needs_its_key() -> None:
    d = Driver()
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert d.request("POST", path, body=body).status == 403
    r = d.request("POST", path, body=body, headers={"x-goog-api-key": "wrong"})
    assert r.status == 400 and r.json()["error"]["message"] == "API key not valid. Please pass a valid API key."
    r = d.request("POST", path, body=body, headers={"x-goog-api-key": vendors.GEMINI_KEY})
    assert r.status == 200 and r.json()["candidates"][0]["content"]["parts"][-1]["text"].startswith("Echo: hi")
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    r = d.request("POST", path, body=body, headers={"x-goog-api-key": vendors.GEMINI_KEY})
    assert r.status == 200 and sse_json(r.body)
    r = d.request("POST", "/v1beta/models/gpt-4:generateContent", body=body,
                  headers={"x-goog-api-key": vendors.GEMINI_KEY})
    assert r.status == 404


def _jwt(claims: dict[str, Any]) -> str:
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    def enc(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = enc(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = enc(json.dumps(claims).encode())
    key = serialization.load_pem_private_key(vendors.GOOGLE_PRIVATE_KEY.encode(), None)
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
    return f"{head}.{body}.{enc(signature)}"


def test_vertex_needs_a_token_from_a_service_account_assertion() -> None:
    d = Driver()
    now = int(d.clock.seconds())
    claims = {"iss": vendors.GOOGLE_SERVICE_ACCOUNT, "aud": "https://oauth2.googleapis.com/token", "scope": vendors.GOOGLE_SCOPE,
              "iat": now, "exp": now + 3600}
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def grant(assertion: str) -> Any:
        data = f"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}".encode()
        return d.request("POST", "/token", data=data, headers=form)

    tampered = _jwt(claims)[:-4] + "AAAA"
    assert grant(tampered).json()["error"] == "invalid_grant"
    assert grant(_jwt({**claims, "scope": "email"})).json()["error"] == "invalid_scope"
    r = grant(_jwt(claims))
    assert r.status == 200, r.body
    token = r.json()["access_token"]
    path = "/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert d.request("POST", path, body=body, headers={"Authorization": "Bearer nope"}).status == 401
    r = d.request("POST", path, body=body, headers={"Authorization": "Bearer " + token})
    assert r.status == 200 and r.json()["candidates"][0]["content"]["parts"][-1]["text"].startswith("Echo: hi")
