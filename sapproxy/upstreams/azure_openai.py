"""
C{"kind": "azure-openai"}: an Azure OpenAI resource, C{{endpoint}/openai/deployments/{deployment}/...} with
C{?api-version=} and the C{api-key} header; the same wire format as SAP AI Core's GPT deployments.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sapproxy.config.providers import AzureOpenAIProvider as Settings
from sapproxy.dispatch.picker import Deployment
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.vendor import VendorProvider


class AzureOpenAIProvider(VendorProvider):
    settings: Settings

    def deployment_url(self, model: str, upstream: str) -> str:
        name = self.settings.deployments[model]
        return f"{self.settings.endpoint.rstrip('/')}/openai/deployments/{quote(name, safe='')}"

    def operation_url(self, deployment: Deployment, request: WireRequest, target: WireTarget) -> str:
        version = self._models[deployment.model].api_version or self.settings.api_version
        return f"{deployment.url}/{request.operation}?api-version={version}"

    def static_headers(self) -> dict[bytes, list[bytes]]:
        return {b"content-type": [b"application/json"],
                b"api-key": [self.settings.api_key.value.encode("latin-1")]}

    def wire_format(self, model: str) -> str:
        return "openai_chat"

    def health_extra(self) -> dict[str, Any]:
        return {"endpoint": self.settings.endpoint}


def build(settings: Settings, context: ProviderContext, previous: Any = None) -> AzureOpenAIProvider:
    return AzureOpenAIProvider(settings)
