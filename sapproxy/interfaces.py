"""
The three seams of the gateway, as zope Interfaces.

A request enters through a B{client API} (the dialect the client speaks: OpenAI Chat Completions, Anthropic
Messages, ...), leaves through a B{wire format} (the body and stream an upstream speaks: OpenAI chat, Bedrock
invoke, Converse, Gemini), and is sent by a B{provider} (who the upstream is and how to reach it: SAP AI Core's
deployments with XSUAA tokens today).  The dispatcher (L{sapproxy.dispatch}) sees only these interfaces, so a
new dialect, format or upstream kind is one module and one line in L{sapproxy.registry}.

The plan (L{sapproxy.dispatch.plan}) joins them by one rule: a client API whose C{native_wire} is the model's
wire format passes the client's body through, sanitised by the wire format; anything else goes client -> IR ->
wire and back.  The IR is the Anthropic Messages format (L{sapproxy.translate}).

This module imports no Twisted, so the pure translators in L{sapproxy.translate} can implement it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.web.http_headers import Headers

    from sapproxy.dispatch.picker import Deployment
    from sapproxy.errors import GatewayError
    from sapproxy.translate.framing.pipeline import Source, Translator
    from sapproxy.translate.ir import Request as IRRequest, Response as IRResponse
    from sapproxy.translate.usage import Usage
    from sapproxy.translate.wire import WireRequest, WireTarget


class IClientCall(Interface):
    """
    One request's client side: what the client asked for and how its answer is written.

    Made by L{IClientAPI.call} from the client's body, once per request; the dispatcher may use it for several
    upstream attempts (failover), so it holds no per-attempt state.
    """

    model = Attribute("str: the model name the client sent; responses name it, whatever served them.")
    stream = Attribute("bool: whether the client asked for a stream.")
    body = Attribute("dict: the client's request body, as it came; empty once L{committed}.")

    def ir() -> IRRequest:
        """
        The request in the IR (an Anthropic Messages body); converted once, on first use.

        @raise sapproxy.translate.errors.InvalidRequest: the body cannot be converted.
        """

    def response_from_ir(message: IRResponse) -> dict[str, Any]:
        """
        A whole IR message (the upstream's answer, converted) as the client's response body.
        """

    def stream_from_ir() -> list[Translator]:
        """
        New translators from IR stream events to the client's events, for one stream.
        """

    def prompt_tokens(family: str) -> int:
        """
        An offline estimate of the prompt's tokens (from the IR where it was built), for when the upstream
        reports none.
        """

    def committed(family: str) -> None:
        """
        The answer is on its way to the client: no attempt will be planned again.  Keep a prompt estimate for
        L{prompt_tokens} and what the rest of the answer needs, and let the body and its IR go, so a stream
        that lasts minutes does not hold a request that may be megabytes.
        """


class IClientAPI(Interface):
    """
    One client dialect: its bodies to and from the IR, its stream framing and its errors.
    """

    name = Attribute("str: the dialect's name ('openai', 'anthropic', ...); usage rows and logs carry it.")
    native_wire = Attribute("str or None: the wire format that is this dialect (its bodies pass through).")
    input_tokens_at_start = Attribute(
        "bool: the dialect's first stream event carries the prompt's token count (Anthropic's message_start), "
        "so a wire format that reports it only at the end gets an estimate there.")
    done = Attribute("bytes: written after a stream's last event (OpenAI's C{data: [DONE]}), or C{b''}.")
    keepalive = Attribute("bytes: written into a silent stream so the client's watchdog stays quiet.")

    def call(body: dict[str, Any], model: str, hints: dict[str, Any]) -> IClientCall:
        """
        One request of this dialect.

        @param model: the model name the client sent.
        @param hints: what the surface read besides the body (e.g. C{anthropic-beta}), for the wire format.
        """

    def encode(event: Any) -> bytes:
        """
        One client event, framed for one write (SSE C{data:} or C{event:}/C{data:}).
        """

    def error_body(error: GatewayError) -> dict[str, Any]:
        """
        C{error} as this dialect's JSON error body.
        """

    def error_event(error: GatewayError) -> bytes:
        """
        C{error} as the event that ends a stream already under way.
        """

    def prompt_tokens(body: dict[str, Any], family: str) -> int:
        """
        An offline estimate of the prompt's tokens, for when the upstream reports none.
        """


class IWireFormat(Interface):
    """
    One upstream format: the IR to its request bodies, its answers and streams back to the IR.

    It knows bodies and events, not URLs: the provider maps the operation it names to a URL.
    """

    name = Attribute("str: the format's name ('openai_chat', 'bedrock_invoke', 'converse', 'gemini').")
    fit_kind = Attribute(
        "str: which upstream's rules this format's requests are fitted to before conversion (tools, tool names, "
        "sampling, output ceilings; L{sapproxy.translate.fit}): openai, gemini, converse, invoke or anthropic.")
    input_tokens_at_end = Attribute("bool: its streams report the prompt's token count only at their end.")
    dialect_of = Attribute(
        "str: the format this one is a variant of, for the pass-through rule (C{client.native_wire == "
        "wire.dialect_of}): OpenAI-compatible servers' chat is OpenAI chat; most formats name themselves.")

    def request(ir: IRRequest, target: WireTarget, stream: bool) -> WireRequest:
        """
        An IR request as this format's request for C{target}.

        @raise sapproxy.translate.errors.InvalidRequest: the IR cannot be expressed in this format.
        """

    def passthrough(call: IClientCall, target: WireTarget) -> WireRequest:
        """
        The client's own body, in this very format, sanitised for the upstream.
        """

    def embeddings(body: dict[str, Any], target: WireTarget) -> WireRequest:
        """
        An embeddings request (the client's body, sent as it is but for the model the target names).

        @raise sapproxy.translate.errors.InvalidRequest: this format serves no embeddings.
        """

    def stream_source(content_type: str) -> Source:
        """
        A new source that turns the upstream's stream bytes (of this Content-Type) into event dicts.
        """

    def stream_to_ir(model: str, message_id: str) -> list[Translator]:
        """
        New translators from this format's stream events to IR stream events.
        """

    def passthrough_stream(call: IClientCall) -> list[Translator]:
        """
        New translators that carry this format's stream to a client of the same format (normalised).
        """

    def response_to_ir(response: dict[str, Any], model: str) -> IRResponse:
        """
        A whole upstream response as an IR message, named C{model}.
        """

    def passthrough_response(response: dict[str, Any], call: IClientCall) -> dict[str, Any]:
        """
        A whole upstream response for a client of the same format (normalised, named as the client asked).
        """

    def usage(response: dict[str, Any]) -> Usage | None:
        """
        The token counts of a whole response, if it says.
        """


class IProvider(Interface):
    """
    One upstream of some kind (an SAP AI Core subaccount, ...): which models it serves through which
    deployments, in which wire format, and how each attempt is addressed and authorised.
    """

    name = Attribute("str: the provider's name in the config (a subaccount's name for SAP AI Core).")
    kind = Attribute("str: the provider kind (its key in L{sapproxy.registry.PROVIDER_KINDS}).")
    credential_span = Attribute("str: the name of the tracing span of a credential fetch (C{sap.token}).")
    balanced = Attribute(
        "bool: shares a model's traffic round robin with the other balanced providers serving it (SAP AI Core "
        "subaccounts); the others are fallbacks, tried after them in config order.")
    refuses_credentials_with = Attribute(
        "tuple of int: the HTTP statuses with which this upstream refuses the gateway's own credentials (a 502 "
        "for the client, never its own 401/403); empty where a 403 is the client's business.")
    generation = Attribute(
        "int: changes whenever the models or deployments it serves change at run time (discovery), so those who "
        "cache them (the picker, the model catalog) know to look again; constant for a static provider.")

    def start() -> None:
        """
        Start background work (check credentials, discover deployments).  Nothing waits for it, and a failure
        is logged and retried, never a reason not to serve.
        """

    def models() -> list[str]:
        """
        The model names this provider serves, as clients name them.
        """

    def deployments(model: str) -> list[Deployment]:
        """
        The deployments that serve C{model}, in configured order.
        """

    def wire_format(model: str) -> str:
        """
        The name of the wire format C{model} speaks at this provider.
        """

    def also_speaks(model: str) -> tuple[str, ...]:
        """
        Wire formats C{model}'s deployments serve besides L{wire_format}'s; the plan prefers one that is the
        client's own (AI Core's GPT deployments answer the Responses API too).
        """

    def target(model: str) -> WireTarget:
        """
        What a wire format needs to know of C{model} here: the upstream's model id and its settings.
        """

    def url(deployment: Deployment, request: WireRequest) -> bytes:
        """
        The URL of one wire request's operation at C{deployment}, as request-line bytes.
        """

    def credentials_ready() -> bool:
        """
        Whether an attempt now would be authorised without fetching credentials first.
        """

    def authorize(deployment: Deployment, url: bytes, body: bytes, traceparent: str | None) -> Deferred[Headers]:
        """
        The headers of one attempt (a bearer token, an API key, a request signature), or a failure with a
        L{sapproxy.errors.GatewayError} when no credential can be had.
        """

    def credentials_rejected(deployment: Deployment, headers: Headers) -> bool:
        """
        The upstream answered 401 to an attempt made with C{headers}: forget what was used and say whether
        one more attempt with fresh credentials makes sense.
        """

    def answered() -> None:
        """
        An upstream of this provider answered an attempt (its credentials work, again).
        """

    def deployment_gone(deployment: Deployment, message: str) -> bool:
        """
        The deployment answered 404 with C{message}: whether that means the deployment itself is gone (and not
        that the client asked for something that does not exist).  A provider that can look for its deployments
        again starts doing so.
        """

    def health() -> dict[str, Any]:
        """
        The provider's state for C{/health}: no secrets.
        """

    def stop() -> None:
        """
        Stop background work (token refreshes).
        """
