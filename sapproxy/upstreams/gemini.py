"""
C{"kind": "gemini"}: the Gemini API, C{{base_url}/models/{model}:generateContent} (and
C{streamGenerateContent?alt=sse}) with the C{x-goog-api-key} header; the same wire format as SAP AI Core's
Vertex deployments.
"""

from __future__ import annotations

from typing import Any

from sapproxy.config.providers import GeminiProvider as Settings
from sapproxy.dispatch.picker import Deployment
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.vendor import VendorProvider, base_of, model_fragment


class GeminiProvider(VendorProvider):
    settings: Settings

    def deployment_url(self, model: str, upstream: str) -> str:
        return model_fragment(self.settings.base_url, upstream)

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

    def health_extra(self) -> dict[str, Any]:
        return {"base_url": self.settings.base_url}


def build(settings: Settings, context: ProviderContext, previous: Any = None) -> GeminiProvider:
    return GeminiProvider(settings)
