"""
The gateway's request path between a route and the upstreams: deployments tried in failover order, tokens,
retries, the stream relay, and the accounting every request leaves behind.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import treq
from attrs import define, field
from twisted.internet.defer import CancelledError, TimeoutError as DeferredTimeoutError
from twisted.internet.error import (
    ConnectError, ConnectingCancelledError, ConnectionClosed, DNSLookupError, TimeoutError,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import RequestGenerationFailed, RequestTransmissionFailed
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from sapproxy.auth import ClientIdentity
from sapproxy.config import GatewayConfig
from sapproxy.errors import GatewayError, kind_for_status
from sapproxy.dispatch.plan import Exchange
from sapproxy.dispatch.picker import Deployment, DeploymentPicker
from sapproxy.dispatch.shutdown import Waiting
from sapproxy.dispatch.relay import ANTHROPIC_STREAM, OPENAI_STREAM, FailedBeforeFirstByte, StreamRelay
from sapproxy.upstreams.hostile import BodyFailed, read_whole, retry_after_seconds
from sapproxy.upstreams.sap_aicore import TokenCache, TokenFetchError, XsuaaClient
from sapproxy.tracing import Tracing
from sapproxy.translate.estimate import response_text_chars
from sapproxy.translate.ids import random_hex
from sapproxy.translate.usage import Usage
from sapproxy.upstreams.http import UpstreamClient, sleep, upstream_headers, url_bytes

log = Logger()

# Everything an upstream request can fail with before a response: connecting, sending, waiting for headers.
# (twisted.web's _newclient wraps its causes in _WrapperException subclasses that share no useful base.)
_NETWORK_ERRORS = (ConnectError, ConnectingCancelledError, ConnectionClosed, DNSLookupError, TimeoutError,
                   DeferredTimeoutError, ResponseFailed, ResponseNeverReceived, RequestGenerationFailed,
                   RequestTransmissionFailed)


class HeadersTimeout(TimeoutError):
    """
    The upstream did not send its response headers within C{timeouts.headers}.

    Raised in place of the cancellation the timeout causes, so that it is never mistaken for the client
    hanging up (which also cancels the request).
    """


@define
class RequestContext:
    """
    Everything known about one client request, filled in as it goes; at the end, one usage row.
    """

    dialect: str
    endpoint: str
    started: float
    started_wall: float = field(factory=time.time)
    request_id: str = field(factory=lambda: "req_" + random_hex(24))
    user_agent: str = ""
    identity: ClientIdentity | None = None
    model_requested: str = ""
    model_resolved: str = ""
    subaccount: str = ""
    deployment: str = ""
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    usage: Usage | None = None
    first_byte_at: float | None = None
    attempts: int = 0
    failovers: int = 0
    client_hung_up: bool = False
    reached_upstream: bool = False
    #: When set, the request's accounting waits for it (a hung-up stream being drained for its usage).
    pending: Any = None
    #: The request body and family, for a prompt estimate when the upstream reports no usage.
    body: Any = None
    family: str = ""
    output_chars: int = 0
    #: The client's W3C trace context, passed upstream so a trace spans the gateway.
    traceparent: str | None = None
    #: The request's OpenTelemetry span, when tracing is on.
    span: Any = None


class Gateway:
    def __init__(self, config: GatewayConfig, reactor: Any, http: Any, upstream: UpstreamClient, *,
                 metrics: Any = None, previous: Gateway | None = None, tracing: Tracing | None = None) -> None:
        """
        @param http: a treq client, for token fetches.
        @param upstream: the client inference calls go through.
        @param previous: the gateway this one replaces on a config reload: token caches of subaccounts whose
            service key did not change are kept (no needless token fetch), and the streams it still relays
            stay visible to L{end_streams}.
        """
        self.config = config
        self.reactor = reactor
        self.http = http
        self.upstream = upstream
        self._urls: dict[tuple[str, str], bytes] = {}
        self.metrics = metrics
        self.tracing = tracing or Tracing(None)
        self.picker = DeploymentPicker(config.subaccounts, reactor, cooldown=config.retry.cooldown,
                                       failures=config.retry.breaker_failures)
        xsuaa = XsuaaClient(http, reactor, timeout=config.timeouts.token)
        old = previous.tokens if previous is not None else {}
        self.tokens: dict[str, TokenCache] = {}
        for name, account in config.subaccounts.items():
            kept = old.get(name)
            if kept is not None and kept.key == account.service_key:
                self.tokens[name] = kept
            else:
                self.tokens[name] = TokenCache(name, account.service_key, _deferred(xsuaa.fetch), reactor,
                                               on_refresh=self._token_refreshed)
        self.relays: set[StreamRelay] = previous.relays if previous is not None else set()
        #: Upstream calls still waiting for response headers (cancelled at the drain timeout).
        self.waiting: Waiting = previous.waiting if previous is not None else Waiting()

    def _token_refreshed(self, subaccount: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.token_refresh(subaccount, outcome)

    def stop(self, keep: Gateway | None = None) -> None:
        """
        Stop background token refreshes, except those of caches that C{keep} (a reload's successor) uses.
        """
        kept = set(map(id, keep.tokens.values())) if keep is not None else set()
        for cache in self.tokens.values():
            if id(cache) not in kept:
                cache.stop()

    async def forward(self, ctx: RequestContext, request: Any, model: str, exchange: Exchange) -> Any:
        """
        Send C{exchange} to the deployments of C{model} until one answers.

        Returns the client's JSON for a whole response; for a stream, writes it to C{request} and returns
        C{b""} when it is over.

        @raise GatewayError: no deployment could answer; the route renders it in the client's dialect.
        """
        policy = self.config.retry
        deployments = self.picker.candidates(model)
        if not deployments:
            raise GatewayError("not_found", f"no deployment serves model {model}")
        deadline_wait = policy.max_wait
        waited = 0.0
        last: GatewayError | None = None
        index = 0
        refreshed_token = False
        retried_stale = False
        while ctx.attempts < policy.attempts:
            deployment = deployments[index % len(deployments)]
            if ctx.attempts > 0 and ctx.deployment and ctx.deployment != deployment.id:
                ctx.failovers += 1
                if self.metrics is not None:
                    self.metrics.failover(model)
            ctx.attempts += 1
            ctx.subaccount = deployment.subaccount.name
            ctx.deployment = deployment.id
            cache = self.tokens[deployment.subaccount.name]
            token_span = self.tracing.child(ctx.span, "sap.token", subaccount=cache.name) \
                if self.tracing.enabled and not cache.state()["token"] == "valid" else None
            try:
                token = await cache.get()
                Tracing.end(token_span)
            except TokenFetchError as e:
                Tracing.end(token_span, error=str(e))
                last = GatewayError("overloaded", f"could not get an SAP AI Core token for subaccount "
                                    f"{deployment.subaccount.name}: {e}")
                self._upstream_error(deployment, "token")
                index += 1
                continue
            span = self.tracing.child(ctx.span, "upstream " + exchange.path.split("?", 1)[0], client=True,
                                      subaccount=deployment.subaccount.name, deployment=deployment.id,
                                      attempt=ctx.attempts)
            try:
                response = await self._post(deployment, exchange, token,
                                            self.tracing.traceparent(span) or ctx.traceparent)
                Tracing.end(span, **{"http.status_code": response.code})
            except _NETWORK_ERRORS as e:
                Tracing.end(span, error=type(e).__name__)
                if not isinstance(e, HeadersTimeout) and _cancelled(e):
                    # The client went away before the upstream answered: nothing to retry for.
                    raise CancelledError() from None
                if isinstance(e, RequestTransmissionFailed) and not retried_stale:
                    # Most often a pooled connection the upstream had closed meanwhile (a POST is never
                    # retried by the pool itself): nothing was sent, so once more on a fresh connection.
                    retried_stale = True
                    ctx.attempts -= 1
                    continue
                last = _network_error(e)
                self._upstream_error(deployment, type(e).__name__)
                self.picker.failed(deployment)
                index += 1
                if index % len(deployments) == 0:
                    waited += await self._backoff(ctx, None, waited, deadline_wait)
                continue
            ctx.reached_upstream = True
            status = response.code
            if status == 401 and not refreshed_token:
                # A token the upstream no longer accepts: get a fresh one and try the same deployment again.
                await _discard(response)
                self.tokens[deployment.subaccount.name].invalidate(token)
                refreshed_token = True
                ctx.attempts -= 1
                continue
            if status == 429 or status >= 500:
                error = await _upstream_error(response)
                last = error
                self._upstream_error(deployment, str(status))
                if status == 429:
                    delay = self._retry_delay(ctx, error.retry_after)
                    if waited + delay <= deadline_wait and len(deployments) == 1:
                        waited += delay
                        await sleep(self.reactor, delay)
                        continue
                else:
                    self.picker.failed(deployment)
                index += 1
                if index % len(deployments) == 0 and ctx.attempts < policy.attempts:
                    waited += await self._backoff(ctx, error.retry_after, waited, deadline_wait)
                continue
            if status >= 400:
                # The client's own mistake, in the upstream's words: retrying elsewhere would not help.
                raise await _upstream_error(response)
            self.picker.succeeded(deployment)
            if not exchange.stream:
                try:
                    return await self._whole(ctx, response, exchange)
                except BodyFailed as e:
                    # Reset mid-body: nothing reached the client yet, so the next deployment may answer.
                    last = e.error
                    self._upstream_error(deployment, "body")
                    self.picker.failed(deployment)
                    index += 1
                    continue
            try:
                return await self._stream(ctx, request, response, exchange)
            except FailedBeforeFirstByte as e:
                last = e.error
                self._upstream_error(deployment, "stream")
                self.picker.failed(deployment)
                index += 1
                continue
        assert last is not None
        raise last

    def _upstream_error(self, deployment: Deployment, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_error(deployment.subaccount.name, kind)

    def _retry_delay(self, ctx: RequestContext, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = self.config.retry.backoff * (2 ** max(ctx.attempts - 1, 0))
        return random.uniform(0, base)

    async def _backoff(self, ctx: RequestContext, retry_after: float | None, waited: float, limit: float) -> float:
        delay = min(self._retry_delay(ctx, retry_after), max(limit - waited, 0.0))
        if delay > 0:
            await sleep(self.reactor, delay)
        return delay

    def _post(self, deployment: Deployment, exchange: Exchange, token: str, traceparent: str | None) -> Any:
        account = deployment.subaccount
        headers = upstream_headers(token, account.resource_group, account.service_key.identityzoneid, traceparent)
        key = (deployment.url, exchange.path)
        url = self._urls.get(key)
        if url is None:
            # Deployment URLs and exchange paths come from the config, so this cache is bounded by it.
            url = self._urls[key] = url_bytes(deployment.url + exchange.path)
        d = self.upstream.post(url, headers, exchange.body)
        self.waiting.track(d)
        expired = []

        def expire() -> None:
            expired.append(True)
            d.cancel()

        timer = self.reactor.callLater(self.config.timeouts.headers, expire)

        def settled(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            if expired and isinstance(result, Failure):
                raise HeadersTimeout(f"no response headers within {self.config.timeouts.headers:g} s")
            return result

        return d.addBoth(settled)

    async def _whole(self, ctx: RequestContext, response: Any, exchange: Exchange) -> dict[str, Any]:
        raw = await read_whole(response, self.reactor, timeout=self.config.timeouts.idle,
                               limit=self.config.max_response_bytes)
        ctx.first_byte_at = self.reactor.seconds()
        try:
            upstream = json.loads(raw)
        except ValueError:
            raise GatewayError("bad_gateway", "the upstream answered with a body that is not JSON") from None
        ctx.usage = exchange.usage(upstream)
        converted = exchange.convert(upstream)
        ctx.output_chars = response_text_chars(converted)
        return converted

    async def _stream(self, ctx: RequestContext, request: Any, response: Any, exchange: Exchange) -> bytes:
        content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")
        pipeline = exchange.pipeline(content_type)
        dialect = ANTHROPIC_STREAM if ctx.dialect == "anthropic" else OPENAI_STREAM

        def commit() -> None:
            request.setResponseCode(200)
            request.responseHeaders.setRawHeaders(b"content-type", [b"text/event-stream; charset=utf-8"])
            request.responseHeaders.setRawHeaders(b"cache-control", [b"no-cache"])
            request.responseHeaders.setRawHeaders(b"x-accel-buffering", [b"no"])

        relay = StreamRelay(request, pipeline, dialect, self.reactor, idle_timeout=self.config.timeouts.idle,
                            keepalive=self.config.timeouts.keepalive, on_first_write=commit,
                            drain_on_hangup=self.config.on_client_hangup == "drain",
                            write_stall=self.config.timeouts.write_stall)
        self.relays.add(relay)
        if self.metrics is not None:
            self.metrics.stream_opened()
        try:
            response.deliverBody(relay)
            outcome = await relay.done
        finally:
            self.relays.discard(relay)
            if self.metrics is not None:
                self.metrics.stream_closed()
            ctx.usage = pipeline.usage
            ctx.output_chars = pipeline.output_chars
            ctx.first_byte_at = relay.outcome.first_byte_at
            ctx.client_hung_up = relay.outcome.client_hung_up
            if relay.drained is not None and not relay.drained.called:
                def drained(_: object) -> None:
                    ctx.usage = pipeline.usage
                    ctx.output_chars = pipeline.output_chars

                ctx.pending = relay.drained.addCallback(drained)
        if outcome.error is not None:
            ctx.error_type = outcome.error.kind
        elif pipeline.error is not None:
            ctx.error_type = pipeline.error
        return b""

    @property
    def active_streams(self) -> int:
        return len(self.relays)

    def end_streams(self, error: GatewayError) -> None:
        """
        End every stream now with C{error} as its last event (shutdown after the drain time).
        """
        for relay in list(self.relays):
            relay.end_with(error)


def _cancelled(e: Exception) -> bool:
    if isinstance(e, ConnectingCancelledError):
        return True
    reasons = getattr(e, "reasons", None) or []
    return any(getattr(r, "check", lambda *_: False)(CancelledError) for r in reasons)


def _network_error(e: Exception) -> GatewayError:
    if isinstance(e, (TimeoutError, DeferredTimeoutError)):
        return GatewayError("timeout", "the upstream did not answer in time")
    if isinstance(e, (ConnectError, DNSLookupError)):
        return GatewayError("bad_gateway", "could not connect to the upstream")
    return GatewayError("bad_gateway", "the upstream connection failed before a response")


async def _discard(response: Any) -> None:
    try:
        await treq.content(response)
    except Exception:
        pass


async def _upstream_error(response: Any) -> GatewayError:
    """
    An upstream's error response, as a L{GatewayError} carrying its status and its own message.
    """
    try:
        raw = await treq.content(response)
    except Exception:
        raw = b""
    message = _error_message(raw) or f"the upstream answered HTTP {response.code}"
    retry_after = retry_after_seconds(response.headers.getRawHeaders(b"retry-after"))
    return GatewayError(kind_for_status(response.code), message, status=response.code, retry_after=retry_after)


def _error_message(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return body.get("error_description") or error
        for key in ("message", "Message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return None


def _deferred(fn: Any) -> Any:
    from twisted.internet.defer import Deferred

    return lambda *a: Deferred.fromCoroutine(fn(*a))

