"""
One module per upstream provider kind, and the one HTTP pool they share (L{sapproxy.upstreams.http}).

A provider kind is a module with a C{build(name, settings, context, previous)} function that returns an
L{sapproxy.interfaces.IProvider}; L{sapproxy.registry.PROVIDER_KINDS} names it.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen


@frozen
class ProviderContext:
    """
    What every provider is built with: the reactor, the pool's treq client for its own calls (tokens,
    discovery), the gateway's config and its metrics.
    """

    reactor: Any
    http: Any
    config: Any
    metrics: Any = None
