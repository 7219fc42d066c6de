"""
C{"kind": "bedrock"}: Amazon Bedrock's runtime, C{{endpoint}/model/{id}/invoke} (and
C{invoke-with-response-stream}, C{converse}, C{converse-stream}), each request signed with SigV4.

Credentials come from boto3's own chain, resolved and refreshed on the one credentials thread
(L{sapproxy.upstreams.aws}); requests go through the shared pool like every other upstream call, and the
stream is Bedrock's event stream, decoded as for SAP AI Core's Claude deployments (Anthropic events in
C{invoke-with-response-stream}'s frames; ConverseStream events in C{converse-stream}'s).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from sapproxy.config.providers import BedrockProvider as Settings
from sapproxy.dispatch.picker import Deployment
from sapproxy.errors import GatewayError
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.aws import (
    AwsCredentials, CredentialsError, FrozenCredentials, SigV4Signer, boto3_resolver, shared_threadpool,
)
from sapproxy.upstreams.vendor import VendorProvider

_SIGNED = {"content-type": "application/json"}


def speaks_invoke(model_id: str) -> bool:
    """
    Whether Bedrock's C{invoke} takes the Anthropic Messages body for C{model_id}: Anthropic's models, by
    model id (C{anthropic.claude-...}), cross-region inference profile (C{us.anthropic.claude-...}) or an
    ARN naming one.
    """
    return "anthropic." in model_id.lower()


class BedrockProvider(VendorProvider):
    settings: Settings
    credential_span = "aws.credentials"

    def __init__(self, settings: Settings, reactor: Any, credentials: AwsCredentials) -> None:
        super().__init__(settings)
        self._reactor = reactor
        self.credentials = credentials
        self._signer = SigV4Signer(settings.region, "bedrock")

    def deployment_url(self, model: str, upstream: str) -> str:
        return f"{self.settings.url}/model/{quote(upstream, safe='')}"

    def operation_url(self, deployment: Deployment, request: WireRequest, target: WireTarget) -> str:
        if request.operation == "invoke":
            return deployment.url + ("/invoke-with-response-stream" if request.stream else "/invoke")
        if request.operation == "converse":
            return deployment.url + ("/converse-stream" if request.stream else "/converse")
        return f"{deployment.url}/{request.operation}"

    def wire_format(self, model: str) -> str:
        """
        Claude through C{invoke} (Anthropic's own body) unless the model says C{converse}; every other model
        (Amazon Nova, Meta Llama, Mistral, ...) through Converse, the one API Bedrock serves them all with.
        """
        settings = self._models[model]
        return "converse" if settings.converse or not speaks_invoke(settings.upstream_model) else "bedrock_invoke"

    def start(self) -> None:
        """
        Resolve the credentials now, so the first request does not wait and /health shows a failure early.
        """
        self.credentials.warm()

    def credentials_ready(self) -> bool:
        return bool(self.credentials.state()["credentials"] == "valid")

    def authorize(self, deployment: Deployment, url: bytes, body: bytes,
                  traceparent: str | None) -> Deferred[Headers]:
        text = url.decode("ascii")

        def sign(creds: FrozenCredentials) -> Headers:
            signed = self._signer.sign(creds, text, body, _SIGNED, self._reactor.seconds())
            raw = {name.encode("latin-1"): [value.encode("latin-1")] for name, value in signed.items()}
            raw[b"content-type"] = [b"application/json"]
            if traceparent:
                raw[b"traceparent"] = [traceparent.encode("latin-1")]
            return Headers(raw)

        def failed(failure: Failure) -> Failure:
            failure.trap(CredentialsError)
            raise GatewayError("bad_gateway", f"no usable AWS credentials for provider {self.name}: {failure.value}")

        return self.credentials.get().addCallbacks(sign, failed)

    def credentials_rejected(self, deployment: Deployment, headers: Headers) -> bool:
        """
        Refused (expired or revoked temporary credentials): resolve them again, and try once more.
        """
        self.credentials.invalidate()
        self.rejected = "Bedrock refused the AWS credentials"
        return True

    def health(self) -> dict[str, Any]:
        state = super().health()
        creds = self.credentials.state()
        state.update(creds)
        if creds["last_error"]:
            state["credentials"] = "failing"
            state["last_error"] = creds["last_error"]
        elif self.rejected:
            state["credentials"] = "failing"
        else:
            state["credentials"] = creds["credentials"]
        state["region"] = self.settings.region
        return state


def _same_source(a: Settings, b: Settings) -> bool:
    return (a.region, a.profile, a.role_arn) == (b.region, b.profile, b.role_arn)


def build(settings: Settings, context: ProviderContext, previous: Any = None) -> BedrockProvider:
    """
    A reload keeps the resolved credentials of a provider whose region, profile and role did not change.
    """
    if isinstance(previous, BedrockProvider) and _same_source(previous.settings, settings):
        credentials = previous.credentials
    else:
        credentials = AwsCredentials(settings.name, boto3_resolver(settings.profile, settings.role_arn,
                                                                   settings.region),
                                     context.reactor, shared_threadpool(context.reactor))
    return BedrockProvider(settings, context.reactor, credentials)
