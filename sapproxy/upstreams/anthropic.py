"""
C{"kind": "anthropic"}: Anthropic's Messages API at C{{base_url}/v1/messages}, C{x-api-key} and
C{anthropic-version}; the config's betas and the client's travel as one C{anthropic-beta} header.
An Anthropic client's requests and streams pass through (L{sapproxy.translate.wire.anthropic_messages}).
"""

from __future__ import annotations

from typing import Any

from sapproxy.config.providers import AnthropicProvider as Settings
from sapproxy.dispatch.picker import Deployment
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.vendor import VendorProvider, base_of, model_fragment


def merged_betas(configured: tuple[str, ...], client: str | None) -> str:
    betas = list(configured)
    for beta in (client or "").split(","):
        beta = beta.strip()
        if beta and beta not in betas:
            betas.append(beta)
    return ",".join(betas)


class AnthropicProvider(VendorProvider):
    settings: Settings

    def deployment_url(self, model: str, upstream: str) -> str:
        return model_fragment(self.settings.base_url, upstream)

    def operation_url(self, deployment: Deployment, request: WireRequest, target: WireTarget) -> str:
        return f"{base_of(deployment.url).rstrip('/')}/v1/messages"

    def static_headers(self) -> dict[bytes, list[bytes]]:
        headers = {b"content-type": [b"application/json"],
                   b"x-api-key": [self.settings.api_key.value.encode("latin-1")],
                   b"anthropic-version": [self.settings.version.encode("latin-1")]}
        if self.settings.betas:
            headers[b"anthropic-beta"] = [merged_betas(self.settings.betas, None).encode("latin-1")]
        return headers

    def wire_format(self, model: str) -> str:
        return "anthropic_messages"

    def health_extra(self) -> dict[str, Any]:
        return {"base_url": self.settings.base_url}


def build(settings: Settings, context: ProviderContext, previous: Any = None) -> AnthropicProvider:
    return AnthropicProvider(settings)
