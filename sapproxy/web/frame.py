"""
What every API route does around its own work: identify the caller, read the body, resolve the model,
render errors in the caller's dialect, and account for the request whatever happens.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from attrs import frozen
from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from sapproxy.accounting import Accounting
from sapproxy.bodylog import BodyLogger
from sapproxy.auth import Authenticator, ClientIdentity, presented_token
from sapproxy.errors import GatewayError
from sapproxy.dispatch.plan import ExchangeBuilder
from sapproxy.dispatch.forward import Gateway, RequestContext
from sapproxy.dispatch.shutdown import shutdown_error
from sapproxy.edge import MALFORMED, malformed, model_name, parse_body, printable
from sapproxy.models import ModelCatalog, ResolvedModel
from sapproxy.tracing import Tracing
from sapproxy.translate.errors import InvalidRequest

log = Logger()
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@frozen
class Services:
    """
    Everything a route needs, built once by L{sapproxy.web.app.build_app}.
    """

    gateway: Gateway
    catalog: ModelCatalog
    authenticator: Authenticator
    accounting: Accounting
    builder: ExchangeBuilder
    rate_limiter: Any = None
    metrics: Any = None
    bodies: BodyLogger | None = None


def json_body(request: Any, status: int, payload: Any, headers: dict[bytes, bytes] | None = None) -> bytes:
    """
    C{payload} as the response's JSON body, with its length: a whole response is sent in one piece, not
    chunked (clients learn its size up front, and the connection is reusable without a closing chunk).
    """
    body = _dumps(payload).encode("utf-8", "replace")
    request.setResponseCode(status)
    raw = request.responseHeaders
    raw.setRawHeaders(b"content-type", [b"application/json"])
    raw.setRawHeaders(b"content-length", [b"%d" % len(body)])
    for name, value in (headers or {}).items():
        raw.setRawHeaders(name, [value])
    return body


def error_body(request: Any, dialect: str, error: GatewayError) -> bytes:
    headers = {}
    if error.retry_after is not None:
        headers[b"retry-after"] = str(max(int(error.retry_after + 0.999), 1)).encode()
    return json_body(request, error.http_status, error.body(dialect), headers)


def read_json_object(request: Any, limit: int) -> dict[str, Any]:
    """
    The request body as a JSON object.

    @raise GatewayError: too large, not UTF-8, not JSON, or not an object; each says which.
    """
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
    if not raw.strip():
        raise GatewayError("invalid_request", "the request body is empty; expected a JSON object")
    body = parse_body(raw)
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "the request body must be a JSON object")
    return body


class ServicesRef:
    """
    The services new requests use.  A config reload (SIGHUP) swaps C{current}; requests already under way
    keep the services they started with, so no stream is dropped by a reload.
    """

    def __init__(self, current: Services) -> None:
        self.current = current


class Route:
    """
    One API route's frame, parameterised by dialect.
    """

    def __init__(self, ref: ServicesRef, dialect: str) -> None:
        self._ref = ref
        self.dialect = dialect

    @property
    def services(self) -> Services:
        return self._ref.current

    @property
    def config(self) -> Any:
        return self._ref.current.gateway.config

    def body(self, request: Any, ctx: RequestContext) -> dict[str, Any]:
        """
        The request's JSON object (L{read_json_object}), logged redacted when body logging is on.
        """
        body = read_json_object(request, self.config.max_body_bytes)
        if self.services.bodies is not None:
            self.services.bodies.request(ctx.request_id, ctx.endpoint, body)
        return body

    def identify(self, request: Any) -> ClientIdentity:
        token = presented_token(request.getHeader(b"authorization"), request.getHeader(b"x-api-key"))
        identity = self.services.authenticator.identify(token)
        if identity is None:
            message = "missing API key" if token is None else "invalid API key"
            raise GatewayError("authentication", f"{message}: send Authorization: Bearer <key> or x-api-key: <key>",
                               code="invalid_api_key")
        return identity

    def resolve(self, ctx: RequestContext, body: dict[str, Any], identity: ClientIdentity) -> ResolvedModel:
        model = model_name(body.get("model"))
        ctx.model_requested = printable(model)
        resolved = self.services.catalog.resolve(model)
        if resolved is None:
            raise GatewayError("not_found", f"model {model!r} is not served by this gateway; "
                               "GET /v1/models lists the models it serves", code="model_not_found", param="model")
        if identity.models is not None and resolved.name not in identity.models and model not in identity.models:
            raise GatewayError("permission", f"this key may not use model {model!r}", code="model_not_allowed")
        ctx.model_resolved = resolved.name
        ctx.body = body
        ctx.family = resolved.family
        return resolved

    def announce(self, request: Any, resolved: ResolvedModel) -> None:
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

    async def run(self, request: Any, endpoint: str,
                  work: Callable[[RequestContext, ClientIdentity], Awaitable[Any]]) -> Any:
        """
        Run C{work} inside the frame: errors rendered in this route's dialect, the request accounted for.
        """
        services = self.services
        clock = services.gateway.reactor
        ctx = RequestContext(dialect=self.dialect, endpoint=endpoint, started=clock.seconds())
        ctx.user_agent = printable((request.getHeader(b"user-agent") or b"").decode("latin-1"), 300)
        traceparent = request.getHeader(b"traceparent")
        if traceparent and len(traceparent) == 55:
            ctx.traceparent = traceparent.decode("latin-1")
        ctx.span = services.gateway.tracing.request("POST " + endpoint, ctx.traceparent)
        request.responseHeaders.setRawHeaders(b"x-request-id", [ctx.request_id.encode()])
        try:
            identity = self.identify(request)
            ctx.identity = identity
            result = await work(ctx, identity)
            if isinstance(result, (dict, list)):
                ctx.status = 200
                if services.bodies is not None:
                    services.bodies.response(ctx.request_id, endpoint, result)
                return json_body(request, 200, result)
            ctx.status = ctx.status or 200
            return result
        except GatewayError as e:
            return self._failed(request, ctx, e)
        except InvalidRequest as e:
            return self._failed(request, ctx, GatewayError("invalid_request", e.message, param=e.param))
        except MALFORMED as e:
            return self._failed(request, ctx, malformed(e, endpoint, ctx.request_id, ctx.attempts))
        except CancelledError:
            ending = shutdown_error(request)
            if ending is not None:
                return self._failed(request, ctx, ending)
            if not getattr(request, "_disconnected", False):
                # A cancellation that was not the client leaving must still end as an error in the dialect.
                log.failure("request cancelled while its client is still connected")
                return self._failed(request, ctx, GatewayError("api_error", "the request was cancelled in the "
                                                              f"gateway; request id {ctx.request_id}"))
            ctx.client_hung_up = True
            ctx.status = ctx.status or 499
            raise
        except Exception:
            log.failure("unexpected error in {endpoint}", endpoint=endpoint)
            return self._failed(request, ctx, GatewayError("api_error", "internal error in the gateway; "
                                                          f"request id {ctx.request_id}"))
        finally:
            if ctx.client_hung_up and not ctx.status:
                ctx.status = 499

            def settle(_: object = None) -> None:
                # Accounting first: it fills in an estimate when the upstream reported no usage, and the
                # tokens-per-minute limit is charged with what was recorded.
                services.accounting.finished(ctx)
                Tracing.end(ctx.span, **{"http.status_code": ctx.status, "sapproxy.model": ctx.model_resolved,
                                         "sapproxy.request_id": ctx.request_id, "sapproxy.attempts": ctx.attempts})
                if ctx.identity is not None and ctx.usage is not None and services.rate_limiter is not None:
                    services.rate_limiter.add_tokens(ctx.identity.key_id, ctx.usage.total_tokens)

            if ctx.pending is not None:
                ctx.pending.addBoth(settle)
            else:
                settle()

    def _failed(self, request: Any, ctx: RequestContext, error: GatewayError) -> bytes:
        ctx.status = error.http_status
        ctx.error_type = error.kind
        if request.startedWriting:
            # A stream already under way: the relay wrote its own error event.
            return b""
        return error_body(request, self.dialect, error)
