"""
C{"kind": "openai"}: any OpenAI-compatible server (OpenAI, vLLM, Ollama's C{/v1}, LM Studio), chat and
embeddings, at C{{base_url}/chat/completions} and C{{base_url}/embeddings}, with an optional bearer key and
extra headers.
"""

from __future__ import annotations

from typing import Any

from sapproxy.config.providers import OpenAIProvider as Settings
from sapproxy.dispatch.picker import Deployment
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.vendor import VendorProvider, base_of, header_lines, model_fragment


class OpenAIProvider(VendorProvider):
    settings: Settings

    def deployment_url(self, model: str, upstream: str) -> str:
        return model_fragment(self.settings.base_url, upstream)

    def operation_url(self, deployment: Deployment, request: WireRequest, target: WireTarget) -> str:
        return f"{base_of(deployment.url)}/{request.operation}"

    def static_headers(self) -> dict[bytes, list[bytes]]:
        headers = header_lines(self.settings.headers.items())
        headers[b"content-type"] = [b"application/json"]
        if self.settings.api_key is not None:
            headers[b"authorization"] = [b"Bearer " + self.settings.api_key.value.encode("latin-1")]
        return headers

    def wire_format(self, model: str) -> str:
        # Whatever the model, an OpenAI-compatible server speaks OpenAI chat, naming the model in the body.
        return "openai_compatible"

    def health_extra(self) -> dict[str, Any]:
        return {"base_url": self.settings.base_url}


def build(settings: Settings, context: ProviderContext, previous: Any = None) -> OpenAIProvider:
    return OpenAIProvider(settings)
