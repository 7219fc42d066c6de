"""
Every client API, surface, wire format and provider kind the gateway has: one line each.

Adding a client API is C{translate/client/X.py} (its L{IClientAPI}) plus C{surfaces/X.py} (its routes) and a
line in L{SURFACES}; a wire format is C{translate/wire/X.py} and a line in L{WIRE_FORMATS}; a provider kind is
C{upstreams/X.py} and a line in L{PROVIDER_KINDS}.  Nothing else names them: the dispatcher sees interfaces.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sapproxy.interfaces import IClientAPI, IProvider, IWireFormat
from sapproxy.surfaces import anthropic_messages, openai_chat, openai_embeddings, openai_models, openai_responses
from sapproxy.translate.wire import (
    anthropic_messages as anthropic_messages_wire, bedrock_invoke, converse, gemini, openai_chat as openai_chat_wire,
    openai_compatible,
)
from sapproxy.translate.wire import openai_responses as openai_responses_wire
from sapproxy.upstreams import (
    ProviderContext, anthropic as anthropic_provider, azure_openai, bedrock, gemini as gemini_provider, openai,
    sap_aicore,
)

#: Surface modules, each with C{install(app, ref)}, C{CLIENT_API} and the C{PATH_PREFIX} its routes live under.
SURFACES: tuple[ModuleType, ...] = (openai_chat, openai_embeddings, openai_models, anthropic_messages,
                                    openai_responses)

#: Wire formats by name (what a provider's C{wire_format(model)} answers).
WIRE_FORMATS: dict[str, IWireFormat] = {
    wire.name: wire for wire in (openai_chat_wire.WIRE_FORMAT, bedrock_invoke.WIRE_FORMAT, converse.WIRE_FORMAT,
                                 gemini.WIRE_FORMAT, openai_compatible.WIRE_FORMAT, anthropic_messages_wire.WIRE_FORMAT,
                                 openai_responses_wire.WIRE_FORMAT)
}

#: Provider kinds: C{build(settings, context, previous)} for one configured upstream of that kind.
PROVIDER_KINDS: dict[str, Any] = {
    "sap_aicore": sap_aicore.build,
    "openai": openai.build,
    "azure-openai": azure_openai.build,
    "anthropic": anthropic_provider.build,
    "bedrock": bedrock.build,
    "gemini": gemini_provider.build,
}

#: The dialect of a path no surface claims (errors for unknown routes are written in it).
DEFAULT_CLIENT_API: IClientAPI = openai_chat.CLIENT_API


def client_api_for(path: bytes) -> IClientAPI:
    """
    The client API whose surface owns C{path} (the longest matching prefix), for errors outside any route.
    """
    best: tuple[int, IClientAPI] = (0, DEFAULT_CLIENT_API)
    for surface in SURFACES:
        prefix = surface.PATH_PREFIX
        if path.startswith(prefix) and len(prefix) > best[0]:
            best = (len(prefix), surface.CLIENT_API)
    return best[1]


def build_providers(config: Any, context: ProviderContext, previous: dict[str, IProvider] | None = None
                    ) -> dict[str, IProvider]:
    """
    Every configured upstream as a provider, by name, in failover order: SAP AI Core subaccounts first, then
    the C{providers} of the config in their order.
    """
    previous = previous or {}
    providers: dict[str, IProvider] = {}
    for name, account in config.subaccounts.items():
        providers[name] = PROVIDER_KINDS["sap_aicore"](account, context, previous.get(name))
    for name, settings in config.providers.items():
        providers[name] = PROVIDER_KINDS[settings.kind](settings, context, previous.get(name))
    return providers
