"""
Request preparation per provider kind: the URL of each operation, the headers of an attempt (keys, versions,
betas, a SigV4 signature equal to botocore's), the body the wire format writes, and what a refused credential
does; and the failover order across SAP subaccounts and vendors.
"""

from __future__ import annotations

import calendar
import datetime
import json
from typing import Any
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from sapproxy.config.providers import (
    AnthropicProvider as AnthropicSettings, AzureOpenAIProvider as AzureSettings, BedrockProvider as BedrockSettings,
    GeminiProvider as GeminiSettings, OpenAIProvider as OpenAISettings, ProviderModel, Secret,
)
from sapproxy.dispatch.picker import Deployment, DeploymentPicker
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.translate.wire.anthropic_messages import WIRE_FORMAT as ANTHROPIC_WIRE
from sapproxy.translate.wire.openai_compatible import WIRE_FORMAT as OPENAI_COMPATIBLE
from sapproxy.upstreams.anthropic import AnthropicProvider
from sapproxy.upstreams.aws import FrozenCredentials
from sapproxy.upstreams.azure_openai import AzureOpenAIProvider
from sapproxy.upstreams.bedrock import BedrockProvider
from sapproxy.upstreams.gemini import GeminiProvider
from sapproxy.upstreams.http import with_headers
from sapproxy.upstreams.openai import OpenAIProvider

CHAT = WireRequest("chat/completions", b"{}", False)


def headers_of(d: Any) -> dict[str, str]:
    result: list[Headers] = []
    d.addCallback(result.append)
    return {k.decode().lower(): b",".join(v).decode() for k, v in result[0].getAllRawHeaders()}


def only(provider: Any, model: str) -> Deployment:
    [deployment] = provider.deployments(model)
    return deployment


def test_openai_compatible() -> None:
    p = OpenAIProvider(OpenAISettings(base_url="http://127.0.0.1:11434/v1/", api_key=Secret("sk-x"),
                                      headers={"OpenAI-Organization": "org-1"},
                                      models={"llama": ProviderModel("llama3.2"), "o3": ProviderModel("o3")},
                                      name="ollama"))
    d = only(p, "llama")
    assert p.url(d, CHAT) == b"http://127.0.0.1:11434/v1/chat/completions"
    assert p.url(d, WireRequest("embeddings", b"{}", False)) == b"http://127.0.0.1:11434/v1/embeddings"
    assert p.wire_format("llama") == "openai_compatible"
    assert p.target("llama") == WireTarget("llama3.2") and p.target("o3").reasoning
    headers = headers_of(p.authorize(d, b"", b"", "00-trace"))
    assert headers == {"authorization": "Bearer sk-x", "openai-organization": "org-1",
                       "content-type": "application/json", "traceparent": "00-trace"}
    # Without a key (a local server), no authorization header at all.
    bare = OpenAIProvider(OpenAISettings(base_url="http://h/v1", models={"m": ProviderModel("m")}, name="b"))
    assert "authorization" not in headers_of(bare.authorize(only(bare, "m"), b"", b"", None))
    assert "sk-x" not in json.dumps(p.health())


def test_openai_compatible_wire_names_the_upstream_model() -> None:
    call = mock.Mock(body={"model": "llama", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                     stream=True)
    body = json.loads(OPENAI_COMPATIBLE.passthrough(call, WireTarget("llama3.2")).body)
    assert body["model"] == "llama3.2" and body["stream_options"] == {"include_usage": True}
    assert call.body["model"] == "llama"  # the client's body is not changed
    ir = {"model": "llama", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert json.loads(OPENAI_COMPATIBLE.request(ir, WireTarget("llama3.2"), False).body)["model"] == "llama3.2"
    embeddings = OPENAI_COMPATIBLE.embeddings({"model": "e", "input": "x"}, WireTarget("nomic-embed-text"))
    assert json.loads(embeddings.body) == {"model": "nomic-embed-text", "input": "x"}


def test_azure_openai() -> None:
    p = AzureOpenAIProvider(AzureSettings(endpoint="https://res.openai.azure.com", api_key=Secret("azkey"),
                                          deployments={"gpt-4o": "my gpt"}, api_version="2024-10-21", name="az"))
    d = only(p, "gpt-4o")
    assert p.url(d, CHAT) == b"https://res.openai.azure.com/openai/deployments/my%20gpt/chat/completions" \
                             b"?api-version=2024-10-21"
    assert p.wire_format("gpt-4o") == "openai_chat"
    assert headers_of(p.authorize(d, b"", b"", None))["api-key"] == "azkey"


def test_anthropic_headers_body_and_betas() -> None:
    p = AnthropicProvider(AnthropicSettings(api_key=Secret("sk-ant"), models={"sonnet": ProviderModel("claude-sonnet-4-5")},
                                            betas=("context-1m-2025-08-07",), name="claude"))
    d = only(p, "sonnet")
    request = ANTHROPIC_WIRE.request({"model": "sonnet", "max_tokens": 5, "anthropic_version": "x",
                                      "messages": [{"role": "user", "content": "hi"}]},
                                     WireTarget("claude-sonnet-4-5", anthropic_beta="interleaved-thinking-2025-05-14, context-1m-2025-08-07"),
                                     True)
    assert p.url(d, request) == b"https://api.anthropic.com/v1/messages"
    body = json.loads(request.body)
    assert body["model"] == "claude-sonnet-4-5" and body["stream"] is True and "anthropic_version" not in body
    raw = p.authorize(d, b"", request.body, None)
    result: list[Headers] = []
    raw.addCallback(result.append)
    merged = with_headers(result[0], request.headers)
    assert merged.getRawHeaders(b"x-api-key") == [b"sk-ant"]
    assert merged.getRawHeaders(b"anthropic-version") == [b"2023-06-01"]
    assert merged.getRawHeaders(b"anthropic-beta") == [b"context-1m-2025-08-07,interleaved-thinking-2025-05-14"]
    assert p.wire_format("sonnet") == "anthropic_messages"


def test_gemini_api() -> None:
    p = GeminiProvider(GeminiSettings(api_key=Secret("gk"), models={"g": ProviderModel("gemini-2.5-flash")},
                                      name="google"))
    d = only(p, "g")
    stream = WireRequest("generateContent", b"{}", True)
    assert p.url(d, stream) == (b"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:"
                                b"streamGenerateContent?alt=sse")
    assert headers_of(p.authorize(d, b"", b"", None))["x-goog-api-key"] == "gk"


class FixedCredentials:
    def __init__(self, creds: FrozenCredentials) -> None:
        self.creds = creds
        self.invalidated = 0

    def get(self) -> Any:
        return succeed(self.creds)

    def invalidate(self) -> None:
        self.invalidated += 1

    def state(self) -> dict[str, Any]:
        return {"credentials": "valid", "expires_in": None, "resolutions": 1, "last_error": None}


WHEN = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def test_bedrock_request_is_signed_as_botocore_signs_it() -> None:
    clock = Clock()
    clock.advance(calendar.timegm(WHEN.utctimetuple()))
    creds = FrozenCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    fixed = FixedCredentials(creds)
    p = BedrockProvider(BedrockSettings(region="eu-central-1", name="aws",
                                        models={"c": ProviderModel("eu.anthropic.claude-sonnet-4-5-20250929-v1:0")}),
                        clock, fixed)  # type: ignore[arg-type]
    d = only(p, "c")
    request = WireRequest("invoke", b'{"max_tokens":5}', True)
    url = p.url(d, request)
    assert url == (b"https://bedrock-runtime.eu-central-1.amazonaws.com/model/"
                   b"eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream")
    assert p.url(d, WireRequest("invoke", b"{}", False)).endswith(b"v1%3A0/invoke")
    ours = headers_of(p.authorize(d, url, request.body, None))
    theirs = AWSRequest(method="POST", url=url.decode(), data=request.body,
                        headers={"content-type": "application/json"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        SigV4Auth(Credentials(creds.access_key, creds.secret_key, creds.token), "bedrock", "eu-central-1").add_auth(theirs)
    assert ours["authorization"] == theirs.headers["Authorization"]
    assert ours["x-amz-security-token"] == "session-token" and ours["x-amz-date"] == "20250601T120000Z"
    assert p.wire_format("c") == "bedrock_invoke"
    # A refusal forgets the credentials, so the next attempt resolves them again.
    assert p.credentials_rejected(d, Headers()) and fixed.invalidated == 1
    assert p.health()["credentials"] == "failing" and "wJalr" not in json.dumps(p.health())


def test_bedrock_converse_urls_and_which_models_take_it() -> None:
    clock = Clock()
    clock.advance(calendar.timegm(WHEN.utctimetuple()))
    models = {"c": ProviderModel("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
              "c-conv": ProviderModel("anthropic.claude-sonnet-4-5-20250929-v1:0", converse=True),
              "nova": ProviderModel("amazon.nova-pro-v1:0"), "llama": ProviderModel("meta.llama3-3-70b-instruct-v1:0")}
    p = BedrockProvider(BedrockSettings(region="us-east-1", name="aws", models=models), clock,
                        FixedCredentials(FrozenCredentials("AKIDEXAMPLE", "secret")))  # type: ignore[arg-type]
    assert p.wire_format("c") == "bedrock_invoke"
    # Claude when asked, and every model that is not Anthropic's: Bedrock's invoke takes no Messages body for them.
    assert p.wire_format("c-conv") == p.wire_format("nova") == p.wire_format("llama") == "converse"
    base = b"https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1%3A0"
    assert p.url(only(p, "nova"), WireRequest("converse", b"{}", False)) == base + b"/converse"
    assert p.url(only(p, "nova"), WireRequest("converse", b"{}", True)) == base + b"/converse-stream"


def test_converse_body_for_a_model_that_is_not_claude() -> None:
    from sapproxy.translate.wire.converse import WIRE_FORMAT as CONVERSE

    ir: Any = {"model": "m", "max_tokens": 64, "top_k": 5, "temperature": 0.5,
               "messages": [{"role": "user", "content": "hi"}]}
    claude = json.loads(CONVERSE.request(ir, WireTarget("anthropic.claude-sonnet-4-5-20250929-v1:0"), True).body)
    assert claude["additionalModelRequestFields"] == {"top_k": 5}
    nova = json.loads(CONVERSE.request(ir, WireTarget("amazon.nova-pro-v1:0"), True).body)
    assert nova["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 5}}
    assert nova["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.5}
    thinking: Any = {**ir, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    llama = json.loads(CONVERSE.request(thinking, WireTarget("meta.llama3-3-70b-instruct-v1:0"), False).body)
    assert "additionalModelRequestFields" not in llama and llama["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]


class Named:
    generation = 0

    def __init__(self, name: str, kind: str, models: list[str]) -> None:
        self.name = name
        self.kind = kind
        self.balanced = kind == "sap_aicore"
        self._models = models

    def models(self) -> list[str]:
        return self._models

    def deployments(self, model: str) -> list[Deployment]:
        return [Deployment(self.name, f"https://{self.name}/d", model)]


def test_sap_subaccounts_take_turns_and_vendors_follow_in_config_order() -> None:
    providers = [Named("acct1", "sap_aicore", ["gpt"]), Named("openai", "openai", ["gpt"]),
                 Named("acct2", "sap_aicore", ["gpt"]), Named("azure", "azure-openai", ["gpt"])]
    picker = DeploymentPicker(providers, Clock())
    orders = [[d.provider for d in picker.candidates("gpt")] for _ in range(3)]
    assert orders == [["acct1", "acct2", "openai", "azure"], ["acct2", "acct1", "openai", "azure"],
                      ["acct1", "acct2", "openai", "azure"]]


def test_routing_fixes_the_order_and_breakers_still_apply() -> None:
    clock = Clock()
    providers = [Named("acct1", "sap_aicore", ["gpt"]), Named("openai", "openai", ["gpt"]),
                 Named("aws", "bedrock", ["gpt"])]
    picker = DeploymentPicker(providers, clock, failures=1, routing={"gpt": ("aws", "acct1")})
    assert [[d.provider for d in picker.candidates("gpt")] for _ in range(2)] == [["aws", "acct1"]] * 2
    picker.failed(picker.candidates("gpt")[0])
    assert [d.provider for d in picker.candidates("gpt")] == ["acct1", "aws"]


def test_vendors_alone_fail_over_in_config_order() -> None:
    picker = DeploymentPicker([Named("a", "openai", ["m"]), Named("b", "anthropic", ["m"])], Clock())
    assert [[d.provider for d in picker.candidates("m")] for _ in range(2)] == [["a", "b"]] * 2


def test_a_reload_keeps_resolved_bedrock_credentials_when_their_source_is_unchanged() -> None:
    from sapproxy.upstreams import ProviderContext
    from sapproxy.upstreams.bedrock import build

    context = ProviderContext(reactor=Clock(), http=None, config=None)
    settings = BedrockSettings(region="eu-central-1", profile="p", name="aws", models={"c": ProviderModel("m")})
    first = build(settings, context)
    same = build(BedrockSettings(region="eu-central-1", profile="p", name="aws",
                                 models={"c": ProviderModel("m"), "d": ProviderModel("n")}), context, first)
    other = build(BedrockSettings(region="eu-central-1", profile="q", name="aws", models={"c": ProviderModel("m")}),
                  context, first)
    assert same.credentials is first.credentials and other.credentials is not first.credentials
    assert same.models() == ["c", "d"]


def test_vertex_sends_the_service_accounts_token() -> None:
    from sapproxy.config.providers import VertexSettings

    token = FixedCredentials(FrozenCredentials("oauth2", "ya29.token", None, None))
    p = GeminiProvider(GeminiSettings(models={"g": ProviderModel("gemini-2.5-pro")}, name="vertex",
                                      vertex=VertexSettings("proj", "us-central1", "sa.json")),
                       token)  # type: ignore[arg-type]
    d = only(p, "g")
    assert p.url(d, WireRequest("generateContent", b"{}", False)) == (
        b"https://us-central1-aiplatform.googleapis.com/v1/projects/proj/locations/us-central1/publishers/google/"
        b"models/gemini-2.5-pro:generateContent")
    headers = headers_of(p.authorize(d, b"", b"", None))
    assert headers["authorization"] == "Bearer ya29.token" and "x-goog-api-key" not in headers
    assert p.credentials_rejected(d, Headers()) and token.invalidated == 1


def test_an_openai_clients_body_passes_through_to_an_openai_compatible_server() -> None:
    from sapproxy.dispatch.plan import plan
    from sapproxy.translate.client.openai_chat import CLIENT_API

    body = {"model": "llama", "stream": True, "logit_bias": {"50256": -100}, "seed": 7, "user": "u1",
            "messages": [{"role": "user", "content": "hi"}]}
    call = CLIENT_API.call(body, "llama", {})
    sent = json.loads(plan(CLIENT_API, call, OPENAI_COMPATIBLE, WireTarget("llama3.2")).request.body)
    assert sent == {**body, "model": "llama3.2", "stream_options": {"include_usage": True}}


def test_session_affinity_chooses_within_the_first_tier_only() -> None:
    from sapproxy.config import AffinitySettings
    from sapproxy.dispatch.affinity import session_route

    class Request:
        def getHeader(self, name: bytes) -> bytes | None:
            return b"session-1" if name == b"x-claude-code-session-id" else None

    providers = [Named(f"v{i}", "openai", ["gpt"]) for i in range(6)] + [Named("acct1", "sap_aicore", ["gpt"]),
                                                                         Named("acct2", "sap_aicore", ["gpt"])]
    picker = DeploymentPicker(providers, Clock())
    for _ in range(4):
        deployments = picker.candidates("gpt")
        tier, fallbacks = picker.tiers("gpt", deployments)
        assert {d.provider for d in tier} == {"acct1", "acct2"}
        session = session_route(Request(), {}, tier, picker.healthy, AffinitySettings())
        assert session is not None
        order = picker.healthy_first(session.order + fallbacks)
        assert {d.provider for d in order[:2]} == {"acct1", "acct2"}
        assert [d.provider for d in order[2:]] == [f"v{i}" for i in range(6)]
