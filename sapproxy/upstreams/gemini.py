"""
C{"kind": "gemini"}: the Gemini API, C{{base_url}/models/{model}:generateContent} (and
C{streamGenerateContent?alt=sse}) with the C{x-goog-api-key} header; or, with C{vertex}, Vertex AI's
C{.../projects/{p}/locations/{l}/publishers/google/models/{model}:...} with a service account's bearer token
(L{sapproxy.upstreams.google_auth}).  The same wire format as SAP AI Core's Vertex deployments.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from sapproxy.config.providers import GeminiProvider as Settings, service_account_path
from sapproxy.dispatch.picker import Deployment
from sapproxy.errors import GatewayError
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.aws import AwsCredentials, CredentialsError, FrozenCredentials, shared_threadpool
from sapproxy.upstreams.vendor import VendorProvider, base_of, model_fragment


class GeminiProvider(VendorProvider):
    settings: Settings

    def __init__(self, settings: Settings, token: AwsCredentials | None = None) -> None:
        super().__init__(settings)
        #: Vertex AI's access tokens (None for the Gemini API's key).
        self.token = token
        if token is not None:
            self.credential_span = "google.token"

    @property
    def base_url(self) -> str:
        vertex = self.settings.vertex
        return vertex.url if vertex is not None else self.settings.base_url

    def deployment_url(self, model: str, upstream: str) -> str:
        return model_fragment(self.base_url, upstream)

    def operation_url(self, deployment: Deployment, request: WireRequest, target: WireTarget) -> str:
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        return f"{base_of(deployment.url).rstrip('/')}/models/{target.model}:{method}"

    def static_headers(self) -> dict[bytes, list[bytes]]:
        headers = {b"content-type": [b"application/json"]}
        if self.settings.api_key is not None:
            headers[b"x-goog-api-key"] = [self.settings.api_key.value.encode("latin-1")]
        return headers

    def wire_format(self, model: str) -> str:
        return "gemini"

    def start(self) -> None:
        if self.token is not None:
            self.token.warm()

    def credentials_ready(self) -> bool:
        return self.token is None or self.token.state()["credentials"] == "valid"

    def authorize(self, deployment: Deployment, url: bytes, body: bytes,
                  traceparent: str | None) -> Deferred[Headers]:
        if self.token is None:
            return super().authorize(deployment, url, body, traceparent)
        static = self._headers

        def headers(token: FrozenCredentials) -> Headers:
            raw = dict(static)
            raw[b"authorization"] = [b"Bearer " + token.secret_key.encode("latin-1")]
            if traceparent:
                raw[b"traceparent"] = [traceparent.encode("latin-1")]
            return Headers(raw)

        def failed(failure: Failure) -> Failure:
            failure.trap(CredentialsError)
            raise GatewayError("bad_gateway", f"no Vertex AI token for provider {self.name}: {failure.value}")

        return self.token.get().addCallbacks(headers, failed)

    def credentials_rejected(self, deployment: Deployment, headers: Headers) -> bool:
        super().credentials_rejected(deployment, headers)
        if self.token is None:
            return False
        # A token revoked early: exchange the service account's assertion for a new one, once.
        self.token.invalidate()
        return True

    def health(self) -> dict[str, Any]:
        state = super().health()
        state["base_url"] = self.base_url
        if self.token is not None:
            token = self.token.state()
            state.update({"token": token["credentials"], "expires_in": token["expires_in"],
                          "fetches": token["resolutions"]})
            if token["last_error"]:
                state["credentials"] = "failing"
                state["last_error"] = token["last_error"]
        return state


def build(settings: Settings, context: ProviderContext, previous: Any = None) -> GeminiProvider:
    vertex = settings.vertex
    if vertex is None:
        return GeminiProvider(settings)
    if isinstance(previous, GeminiProvider) and previous.token is not None and previous.settings.vertex == vertex:
        return GeminiProvider(settings, previous.token)
    from sapproxy.upstreams.google_auth import service_account_resolver

    directory = getattr(context.config, "directory", None)
    path = str(service_account_path(vertex, directory))
    token = AwsCredentials(settings.name, service_account_resolver(path), context.reactor,
                           shared_threadpool(context.reactor), what="Google credentials")
    return GeminiProvider(settings, token)
