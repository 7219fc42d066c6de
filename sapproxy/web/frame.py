"""
What every API route does around its own work: identify the caller, read the body, resolve the model,
render errors in the caller's dialect, and account for the request whatever happens.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import attrs
from attrs import frozen
from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from sapproxy.accounting import Accounting
from sapproxy.bodylog import BodyLogger
from sapproxy.auth import Authenticator, ClientIdentity, presented_token
from sapproxy.compat import client_disconnected
from sapproxy.errors import GatewayError
from sapproxy.dispatch.forward import Gateway, HungUp
from sapproxy.dispatch.plan import ClientRequest
from sapproxy.dispatch.shutdown import shutdown_error
from sapproxy.edge import MALFORMED, malformed, model_name, parse_body, printable
from sapproxy.interfaces import IClientAPI
from sapproxy.record import Outcome, RequestRecord, Undelivered
from sapproxy.runtime import IGatewayRequest
from sapproxy.models import ModelCatalog, ResolvedModel
from sapproxy.ratelimit import IRateLimiter
from sapproxy.tracing import Tracing
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.framing.sse import Rendered
from sapproxy.translate.jsontext import compact_json
from sapproxy.web.pause import BIG_BODY, after_big_body, parse_big_body
from sapproxy.web.budget import NO_BODY

log = Logger()


@frozen
class Services:
    """
    Everything a route needs, built once by L{sapproxy.web.app.build_app}.
    """

    gateway: Gateway
    catalog: ModelCatalog
    authenticator: Authenticator
    accounting: Accounting
    rate_limiter: IRateLimiter | None = None
    metrics: Any = None
    bodies: BodyLogger | None = None
    #: fetches image URLs for upstreams that take only inline images (None: fetching is off)
    images: Any = None
    #: The Responses API's stored responses (sapproxy.usage.responses.ResponseStore), when there is a store.
    responses: Any = None


def json_body(request: IGatewayRequest, status: int, payload: Any, headers: dict[bytes, bytes] | None = None) -> bytes:
    """
    C{payload} as the response's JSON body, with its length: a whole response is sent in one piece, not
    chunked (clients learn its size up front, and the connection is reusable without a closing chunk).
    """
    # A whole upstream response passed through keeps the upstream's JSON (L{Rendered}): written as it is.
    body = payload.json if type(payload) is Rendered else compact_json(payload).encode("utf-8", "replace")
    request.setResponseCode(status)
    raw = request.responseHeaders
    raw.setRawHeaders(b"content-type", [b"application/json"])
    raw.setRawHeaders(b"content-length", [b"%d" % len(body)])
    for name, value in (headers or {}).items():
        raw.setRawHeaders(name, [value])
    return body


def error_body(request: IGatewayRequest, client: IClientAPI, error: GatewayError) -> bytes:
    """
    C{error} as a whole response in the client API's dialect.
    """
    headers = {}
    if error.retry_after is not None:
        headers[b"retry-after"] = str(max(int(error.retry_after + 0.999), 1)).encode()
    return json_body(request, error.http_status, client.error_body(error), headers)


def read_json_object(request: IGatewayRequest, limit: int) -> dict[str, Any]:
    """
    The request body as a JSON object.

    @raise GatewayError: too large, not UTF-8, not JSON, or not an object; each says which.
    """
    parsed = getattr(request, "parsed_body", None)
    if parsed is None:
        declared = getattr(request, "body_too_large", None)
        if declared is not None:
            raise GatewayError("request_too_large", f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        content = request.content
        content.seek(0, 2)
        size = content.tell()
        if size > limit:
            raise GatewayError("request_too_large", f"request body of {size} bytes exceeds the limit of {limit} bytes")
        content.seek(0)
        raw = content.read()
        # Parsed once, here: the request's own copy goes, not to be held for as long as a stream lasts.
        content.seek(0)
        content.truncate()
        if size >= BIG_BODY:
            setattr(request, "parsed_size", size)  # its size, for the round before its encoding (after_big_body)
        if not raw or raw.isspace():
            raise GatewayError("invalid_request", "the request body is empty; expected a JSON object")
        body = parse_body(raw, getattr(request, "body_outline", None))
    else:  # a big body, parsed in pieces already (L{Route.run})
        setattr(request, "parsed_body", None)
        if isinstance(parsed, GatewayError):
            raise parsed
        body = parsed
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "the request body must be a JSON object")
    return body


async def parse_big(reactor: Any, request: IGatewayRequest, limit: int) -> None:
    """
    Parse C{request}'s big body in pieces between reactor turns (L{parse_big_body}) and keep the result (or the
    error) for L{read_json_object}; the body's bytes are let go of at once, only its size is kept.
    """
    if getattr(request, "body_too_large", None) is not None:
        return
    content = request.content
    size = content.seek(0, 2)
    if size > limit:
        return  # read_json_object answers 413
    content.seek(0)
    raw = content.read()
    if not raw or raw.isspace():
        return
    setattr(request, "parsed_size", size)
    request.content = NO_BODY
    close = getattr(content, "close", None)
    if close is not None:
        close()
    del content
    try:
        parsed: Any = await parse_big_body(reactor, raw, getattr(request, "body_outline", None))
    except GatewayError as e:
        parsed = e
    setattr(request, "parsed_body", parsed)


class ServicesRef:
    """
    The services new requests use.  A config reload (SIGHUP) swaps C{current}; requests already under way
    keep the services they started with, so no stream is dropped by a reload.
    """

    def __init__(self, current: Services) -> None:
        self.current = current


class Route:
    """
    One API route's frame, parameterised by its client API (errors are rendered in its dialect).
    """

    def __init__(self, ref: ServicesRef, client: IClientAPI) -> None:
        self._ref = ref
        self.client = client

    @property
    def services(self) -> Services:
        return self._ref.current

    @property
    def config(self) -> Any:
        return self._ref.current.gateway.config

    def body(self, request: IGatewayRequest, record: RequestRecord) -> dict[str, Any]:
        """
        The request's JSON object (L{read_json_object}), logged redacted when body logging is on.
        """
        body = read_json_object(request, self.config.max_body_bytes)
        if self.services.bodies is not None:
            self.services.bodies.request(record.request_id, record.endpoint, body)
        return body

    def identify(self, request: IGatewayRequest) -> ClientIdentity:
        token = presented_token(request.getHeader(b"authorization"), request.getHeader(b"x-api-key"))
        identity = self.services.authenticator.identify(token)
        if identity is None:
            message = "missing API key" if token is None else "invalid API key"
            raise GatewayError("authentication", f"{message}: send Authorization: Bearer <key> or x-api-key: <key>",
                               code="invalid_api_key")
        return identity

    def resolve(self, record: RequestRecord, body: dict[str, Any], identity: ClientIdentity) -> ResolvedModel:
        model = model_name(body.get("model"))
        record.model_requested = printable(model)
        resolved = self.services.catalog.resolve(model)
        if resolved is None:
            raise GatewayError("not_found", f"model {model!r} is not served by this gateway; "
                               "GET /v1/models lists the models it serves", code="model_not_found", param="model")
        if identity.models is not None and resolved.name not in identity.models and model not in identity.models:
            raise GatewayError("permission", f"this key may not use model {model!r}", code="model_not_allowed")
        record.model_resolved = resolved.name
        record.family = resolved.family
        return resolved

    def announce(self, request: IGatewayRequest, resolved: ResolvedModel) -> None:
        """
        Tell the client which configured model served its name (responses name the model it asked for).
        """
        request.responseHeaders.setRawHeaders(b"x-sapproxy-model", [resolved.name.encode()])

    async def limit(self, identity: ClientIdentity) -> None:
        limiter = self.services.rate_limiter
        if limiter is None or (identity.rpm is None and identity.tpm is None):
            return
        decision = await limiter.check(identity.key_id, identity.rpm, identity.tpm)
        if not decision.allowed:
            if self.services.metrics is not None:
                self.services.metrics.rate_limited(identity.name, decision.reason)
            what = "requests" if decision.reason == "rpm" else "tokens"
            raise GatewayError("rate_limit", f"rate limit of this key reached ({what} per minute); retry after "
                               f"{decision.retry_after:.0f} s", retry_after=decision.retry_after, code="rate_limit_exceeded")

    async def forward(self, record: RequestRecord, request: IGatewayRequest, model: str, client_request: ClientRequest) -> Any:
        """
        Dispatch C{client_request} to the configured C{model}; the outcome goes into C{record}.

        @raise GatewayError: no upstream could answer.
        """
        record.call = client_request.call
        record.stream = client_request.call.stream
        await after_big_body(self.services.gateway.reactor, request)  # the parse and the encoding, apart
        try:
            result, record.outcome = await self.services.gateway.forward(record, request, model, client_request)
        except Undelivered as e:
            record.outcome = e.outcome
            raise e.error from None
        except HungUp as e:
            record.outcome = e.outcome
            raise
        return result

    async def run(self, request: IGatewayRequest, endpoint: str,
                  work: Callable[[RequestRecord, ClientIdentity], Awaitable[Any]]) -> Any:
        """
        Run C{work} inside the frame: errors rendered in this route's dialect, the request accounted for.
        """
        services = self.services
        clock = services.gateway.reactor
        record = RequestRecord(client=self.client.name, endpoint=endpoint, started=clock.seconds(),
                               method=request.method.decode("latin-1"))
        record.user_agent = printable((request.getHeader(b"user-agent") or b"").decode("latin-1"), 300)
        setattr(request, "accounted", True)  # this frame logs and counts it (not the site's catch-all line)
        traceparent = request.getHeader(b"traceparent")
        if traceparent and len(traceparent) == 55:
            record.traceparent = traceparent.decode("latin-1")
        record.span = services.gateway.tracing.request(record.method + " " + endpoint, record.traceparent)
        request.responseHeaders.setRawHeaders(b"x-request-id", [record.request_id.encode()])
        try:
            identity = self.identify(request)
            record.identity = identity
            outline = getattr(request, "body_outline", None)
            if outline is not None and outline.size >= BIG_BODY and request.method == b"POST":
                await parse_big(clock, request, self.config.max_body_bytes)
            result = await work(record, identity)
            if isinstance(result, (dict, list)):
                record.status = 200
                if services.bodies is not None:
                    services.bodies.response(record.request_id, endpoint, result)
                return json_body(request, 200, result)
            record.status = record.status or 200
            return result
        except GatewayError as e:
            return self._failed(request, record, e)
        except InvalidRequest as e:
            return self._failed(request, record, GatewayError("invalid_request", e.message, param=e.param))
        except MALFORMED as e:
            return self._failed(request, record, malformed(e, endpoint, record.request_id, record.outcome.attempts))
        except CancelledError:
            ending = shutdown_error(request)
            if ending is not None:
                return self._failed(request, record, ending)
            if not client_disconnected(request):
                # A cancellation that was not the client leaving must still end as an error in the dialect.
                log.failure("request cancelled while its client is still connected")
                return self._failed(request, record, GatewayError("api_error", "the request was cancelled in the "
                                                                 f"gateway; request id {record.request_id}"))
            if not record.outcome.client_hung_up:
                record.outcome = attrs.evolve(record.outcome, client_hung_up=True)
            record.status = record.status or 499
            raise
        except Exception:
            log.failure("unexpected error in {endpoint}", endpoint=endpoint)
            return self._failed(request, record, GatewayError("api_error", "internal error in the gateway; "
                                                             f"request id {record.request_id}"))
        finally:
            if record.outcome.client_hung_up and not record.status:
                record.status = 499

            def settle(outcome: Outcome) -> None:
                record.outcome = outcome
                # Accounting first: it fills in an estimate when the upstream reported no usage, and the
                # tokens-per-minute limit is charged with what was recorded.
                usage = services.accounting.finished(record)
                Tracing.end(record.span, **{"http.status_code": record.status,
                                            "sapproxy.model": record.model_resolved,
                                            "sapproxy.request_id": record.request_id,
                                            "sapproxy.attempts": record.outcome.attempts})
                if record.identity is not None and services.rate_limiter is not None:
                    services.rate_limiter.add_tokens(record.identity.key_id, usage.total_tokens)

            drained = record.outcome.drained
            if drained is not None:
                drained.addCallbacks(settle, lambda _: settle(record.outcome))
            else:
                settle(record.outcome)

    def _failed(self, request: IGatewayRequest, record: RequestRecord, error: GatewayError) -> bytes:
        record.status = error.http_status
        record.error_type = error.kind
        if request.startedWriting:
            # A stream already under way: the relay wrote its own error event.
            return b""
        return error_body(request, self.client, error)
