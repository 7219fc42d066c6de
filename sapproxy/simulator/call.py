"""The parsed, authenticated request a protocol handler answers."""

from __future__ import annotations

from collections.abc import Mapping, MutableSet
from typing import Any

from attrs import field, frozen

from .config import DeploymentSpec
from .directives import Directive


@frozen
class Call:
    """
    One inference request after auth: C{subpath} is what follows C{/v2/inference/deployments/{id}/};
    C{user_text} is the last user turn's text with its directive removed.
    """

    deployment_id: str
    spec: DeploymentSpec
    subpath: str
    query: Mapping[str, str]
    body: Any
    user_text: str
    directive: Directive
    seq: int
    now: float
    #: Prompt-cache prefixes seen so far (shared by the simulator), for cache creation vs. read usage.
    prompt_cache: MutableSet[str] = field(factory=set, eq=False)
