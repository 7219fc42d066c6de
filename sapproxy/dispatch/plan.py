"""
What to send upstream and how to read the answer: a client API, a wire format and a provider joined by rule.

An L{Exchange} is planned once per request; the dispatcher may send it to several deployments (failover) and
asks it only for the wire request, and for a pipeline or converter for the answer.  The rule:

  - the client's dialect I{is} the model's wire format (C{client.native_wire == wire.name}): the client's body
    passes through, sanitised by the wire format, and the answer comes back normalised by it;
  - otherwise client -> IR -> wire on the way up, and wire -> IR -> client on the way down.

This module sees the seams only (L{sapproxy.interfaces}); which dialects, formats and providers exist is the
registry's business (L{sapproxy.registry}).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from attrs import evolve, frozen
from twisted.logger import Logger

from sapproxy.interfaces import IClientAPI, IClientCall, IProvider, IWireFormat
from sapproxy.translate.framing.pipeline import StreamPipeline
from sapproxy.translate.ids import random_hex
from sapproxy.translate.usage import Usage
from sapproxy.translate.fit import fit_request
from sapproxy.translate.prompt_estimate import InputTokensAtStart, estimate_input_tokens
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.translate.named import named_response

log = Logger()


@frozen
class Exchange:
    """
    @ivar request: the upstream request, before a provider addresses it.
    @ivar client: the client API, which frames the stream and its errors.
    @ivar pipeline: for a stream, a new pipeline for the upstream's Content-Type.
    @ivar convert: for a whole response, upstream JSON to the client's JSON.
    @ivar usage: for a whole response, the token counts in the upstream JSON.
    @ivar dropped_tools: the client's tools this upstream cannot run, left out (L{sapproxy.translate.tool_support}).
    """

    request: WireRequest
    client: IClientAPI
    pipeline: Callable[[str], StreamPipeline]
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    usage: Callable[[dict[str, Any]], Usage | None]
    dropped_tools: tuple[str, ...] = ()

    @property
    def stream(self) -> bool:
        return self.request.stream


def plan(client: IClientAPI, call: IClientCall, wire: IWireFormat, target: WireTarget) -> Exchange:
    """
    The exchange for one request (see the module docstring for the rule).

    @raise sapproxy.translate.errors.InvalidRequest: the body cannot be converted (the route answers 400).
    """
    encode = client.encode
    # A variant of a format (OpenAI-compatible servers' OpenAI chat) names the format it is a dialect of.
    if client.native_wire == wire.dialect_of:
        return Exchange(
            request=wire.passthrough(call, target), client=client,
            pipeline=lambda content_type: StreamPipeline(wire.stream_source(content_type),
                                                         wire.passthrough_stream(call), encode),
            convert=lambda response: wire.passthrough_response(response, call), usage=wire.usage,
        )
    # Fitted to what this upstream takes (tools, tool names, sampling, output ceiling): translate/fit.py.
    fitted = fit_request(call.ir(), wire.fit_kind, target.model,
                         max_output_tokens=target.max_output_tokens)
    if fitted.dropped_tools:
        log.info("tools {tools} left out: {model} cannot run them", tools=", ".join(fitted.dropped_tools),
                 model=target.model)
    request = wire.request(fitted.ir, target, call.stream)
    model = call.model
    message_id = "msg_" + random_hex(24)
    names = fitted.names

    def pipeline(content_type: str) -> StreamPipeline:
        # The restorer costs a call per event: only streams whose tool names (or enum values) need it get it.
        restorers: list[Any] = [names.restorer()] if names.renamed else []
        if client.input_tokens_at_start and wire.input_tokens_at_end:
            restorers.append(InputTokensAtStart(estimate_input_tokens(fitted.ir)))
        return StreamPipeline(wire.stream_source(content_type),
                              wire.stream_to_ir(model, message_id) + restorers + call.stream_from_ir(), encode)

    return Exchange(request=request, client=client, pipeline=pipeline,
                    convert=lambda response: call.response_from_ir(names.restore_message(wire.response_to_ir(response, model))),
                    usage=wire.usage, dropped_tools=fitted.dropped_tools)


@frozen
class ClientRequest:
    """
    What a surface hands the dispatcher: the client API, the request of its dialect, and what the surface read
    besides the body (C{hints}, e.g. C{anthropic-beta}).

    @ivar embeddings: an embeddings request (sent as it is), not a conversation.
    """

    client: IClientAPI
    call: IClientCall
    hints: Mapping[str, Any]
    embeddings: bool = False


class Planner:
    """
    Plans the exchange of a request for the provider an attempt goes to.  Providers that serve a model may speak
    different wire formats (a subaccount's Claude on Bedrock invoke, a vendor's on the Anthropic API), so each
    attempt asks for the exchange of its provider's format; L{exchanges} keeps one per format and target.

    @param wire_formats: the registry's wire formats, by name.
    """

    def __init__(self, wire_formats: Mapping[str, IWireFormat]) -> None:
        self._wires = wire_formats

    def exchanges(self, request: ClientRequest, model: str) -> Exchanges:
        """
        The exchanges for C{request} to its C{model}, by provider, planned once per format.
        """
        return Exchanges(self._wires, request, model)


class Exchanges:
    """
    One request's exchanges, planned on first use for each wire format and target its attempts go to, and
    kept until the answer is committed (L{forget}): a failover to a deployment of the same format sends the
    same bytes again.
    """

    def __init__(self, wires: Mapping[str, IWireFormat], request: ClientRequest, model: str) -> None:
        self._wires = wires
        self._request = request
        self._model = model
        self._planned: dict[tuple[str, WireTarget], Exchange] = {}

    def __call__(self, provider: IProvider) -> Exchange:
        request, model = self._request, self._model
        name = provider.wire_format(model)
        native = request.client.native_wire
        if native is not None and native != name and native in provider.also_speaks(model):
            name = native  # the model speaks the client's own format too (GPT: the Responses API)
        target = provider.target(model)
        beta = request.hints.get("anthropic-beta")
        if beta:
            target = evolve(target, anthropic_beta=beta)
        key = (name, target)
        found = self._planned.get(key)
        if found is None:
            wire = self._wires[name]
            if request.embeddings:
                found = _embeddings(request, wire, target)
            else:
                found = plan(request.client, request.call, wire, target)
            self._planned[key] = found
        return found

    def forget(self) -> None:
        """
        No attempt will follow (the answer is committed): let the planned upstream bodies go.
        """
        self._planned.clear()


def _embeddings(request: ClientRequest, wire: IWireFormat, target: WireTarget) -> Exchange:
    """
    An embeddings request, sent as it is to a wire format that serves embeddings.
    """
    call = request.call
    requested = call.model

    def convert(response: dict[str, Any]) -> dict[str, Any]:
        # Named as the client asked; the upstream's JSON kept where it came with it (thousands of floats that
        # need not be written again).
        return named_response(response, requested)

    def never(_: str) -> StreamPipeline:
        raise AssertionError("embeddings never stream")

    return Exchange(request=wire.embeddings(call.body, target), client=request.client, pipeline=never, convert=convert,
                    usage=wire.usage)
