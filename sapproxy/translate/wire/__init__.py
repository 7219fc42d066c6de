"""
One module per upstream wire format: the IR to its request body, its responses and streams to the IR.

Each module ends in a C{WIRE_FORMAT} object (L{sapproxy.interfaces.IWireFormat}) that the registry names; the
two values below are what passes between a wire format, the plan and the provider.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from sapproxy.translate.errors import InvalidRequest


@frozen
class WireTarget:
    """
    What a wire format needs to know of the model it writes for.

    @ivar model: the upstream's id of the model (in a Vertex path; in a body where the format names it).
    @ivar reasoning: an OpenAI reasoning model (o-series, gpt-5): C{max_completion_tokens}, no temperature.
    @ivar anthropic_beta: the client's C{anthropic-beta} header, for formats that carry betas.
    @ivar max_output_tokens: the most output tokens the model gives (configured, else known), sent as the
        limit when an OpenAI client sets none; None where unknown.
    """

    model: str
    reasoning: bool = False
    anthropic_beta: str | None = None
    max_output_tokens: int | None = None


@frozen
class WireRequest:
    """
    One upstream request, before a provider addresses it.

    @ivar operation: the format's own name of what is asked (C{chat/completions}, C{embeddings}, C{invoke},
        C{converse}, C{generateContent}); the provider maps it, with C{stream}, to a URL.
    @ivar body: the request body, encoded.
    @ivar stream: whether the upstream is asked for a stream.
    @ivar headers: request headers the format itself carries (Anthropic's C{anthropic-beta}), added to the
        provider's; a value joins one the provider already sends, comma-separated.
    """

    operation: str
    body: bytes
    stream: bool
    headers: tuple[tuple[bytes, bytes], ...] = ()


class NoEmbeddings:
    """
    For a wire format that serves no embeddings: a request for them is refused clearly.
    """

    name: str

    def embeddings(self, body: dict[str, Any], target: WireTarget) -> WireRequest:
        raise InvalidRequest(f"this model serves no embeddings (its upstream speaks {self.name})", "model")


class NoNativeClient:
    """
    For a wire format that no client dialect speaks (yet): the plan never passes a client's body through to it,
    since no client API names it as its C{native_wire}; should one be asked, the request is refused clearly.
    """

    name: str

    def _refuse(self) -> InvalidRequest:
        return InvalidRequest(f"no client dialect speaks the {self.name} format", "model")

    def passthrough(self, call: Any, target: WireTarget) -> WireRequest:
        raise self._refuse()

    def passthrough_stream(self, call: Any) -> list[Any]:
        raise self._refuse()

    def passthrough_response(self, response: dict[str, Any], call: Any) -> dict[str, Any]:
        raise self._refuse()
