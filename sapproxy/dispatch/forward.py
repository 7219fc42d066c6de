"""
The gateway's request path between a route and the upstreams: deployments tried in failover order, each
attempt planned for its provider's wire format and authorised by its provider, retries, the stream relay.

It sees the seams only: providers (L{sapproxy.interfaces.IProvider}) and the planner are handed in.  It answers
with the response and a frozen L{Outcome} (or raises L{Undelivered} / L{HungUp} carrying one), and writes
into nothing of the route's.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Mapping

import attrs
from attrs import define
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from sapproxy.config import GatewayConfig
from sapproxy.dispatch.failures import (
    NETWORK_ERRORS, HeadersTimeout, cancelled, discard, network_error, refuses_gateway, stale_connection,
    upstream_error,
)
from sapproxy.dispatch.affinity import session_route
from sapproxy.dispatch.picker import Deployment, DeploymentPicker
from sapproxy.dispatch.upstream_faults import (
    UPSTREAM_AUTH_FAILED, StaleDeployments, stale_error, upstream_auth_failed, without_provider,
)
from sapproxy.dispatch.plan import ClientRequest, Exchange, Planner
from sapproxy.dispatch.relay import FailedBeforeFirstByte, StreamRelay
from sapproxy.dispatch.shutdown import Waiting
from sapproxy.errors import GatewayError
from sapproxy.interfaces import IClientAPI, IProvider
from sapproxy.record import Outcome, RequestRecord, Undelivered
from sapproxy.runtime import IGatewayReactor, IGatewayRequest
from sapproxy.tracing import Tracing
from sapproxy.translate.estimate import response_text_chars
from sapproxy.translate.framing.sse import Rendered
from sapproxy.translate.jsontext import parse_json
from sapproxy.dispatch.guards import BodyFailed, read_whole
from sapproxy.upstreams.http import UpstreamClient, sleep, with_headers
from sapproxy.web.notes import announce_dropped_tools
from sapproxy.translate.errors import UnusableAnswer
from sapproxy.translate.framing.pipeline import StreamPipeline

log = Logger()


def _whole_json(raw: bytes) -> dict[str, Any]:
    """
    A whole upstream response's JSON object, with the bytes it came as: a converter that only edits a value
    (GPT pass-through's C{model}) answers with those bytes edited instead of serialising the body again (see
    L{sapproxy.translate.wire.openai_passthrough.openai_response}).

    @raise GatewayError: the body is not a JSON object (C{bad_gateway}).
    """
    try:
        upstream = parse_json(raw)
    except ValueError:
        try:
            upstream = json.loads(raw)  # JSON in UTF-16 or UTF-32, which only the stdlib reads from bytes
        except ValueError:
            raise GatewayError("bad_gateway", "the upstream answered with a body that is not JSON") from None
        raw = b""
    if not isinstance(upstream, dict):
        raise GatewayError("bad_gateway", "the upstream answered with JSON that is not an object")
    if not raw or raw[:1] != b"{":
        return upstream
    return Rendered(upstream, raw)


class _HeadersDeadline:
    """
    An upstream call waiting for its response headers: listed in L{Waiting} (a drain cancels it) and cancelled
    after C{timeout} seconds, which then fails with L{HeadersTimeout}; one callback for both.
    """

    __slots__ = ("d", "_waiting", "_timer", "_expired", "_timeout")

    def __init__(self, d: Deferred[IResponse], waiting: Waiting, clock: Any, timeout: float) -> None:
        self.d = d
        self._waiting = waiting
        self._expired = False
        self._timeout = timeout
        waiting.add(d)
        self._timer = clock.callLater(timeout, self._expire)
        d.addBoth(self._settled)

    def _expire(self) -> None:
        self._expired = True
        self.d.cancel()

    def _settled(self, result: Any) -> Any:
        self._waiting.discard(self.d)
        if self._timer.active():
            self._timer.cancel()
        if self._expired and isinstance(result, Failure):
            raise HeadersTimeout(f"no response headers within {self._timeout:g} s")
        return result


class HungUp(CancelledError):
    """
    The client went away while its request was being dispatched; C{outcome} is what was done until then.
    """

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


@define
class _Tally:
    """
    The dispatcher's count of one request's attempts, frozen into its L{Outcome} at the end.
    """

    attempts: int = 0
    failovers: int = 0
    provider: str = ""
    deployment: str = ""
    reached_upstream: bool = False

    def outcome(self, **more: Any) -> Outcome:
        return Outcome(provider=self.provider, deployment=self.deployment, attempts=self.attempts,
                       failovers=self.failovers, reached_upstream=self.reached_upstream, **more)


class Gateway:
    def __init__(self, config: GatewayConfig, reactor: IGatewayReactor, upstream: UpstreamClient, *,
                 providers: Mapping[str, IProvider], planner: Planner, metrics: Any = None,
                 previous: Gateway | None = None, tracing: Tracing | None = None) -> None:
        """
        @param upstream: the client inference calls go through.
        @param providers: every upstream, by name, in failover order.
        @param previous: the gateway this one replaces on a config reload: the streams it still relays stay
            visible to L{end_streams}.
        """
        self.config = config
        self.reactor = reactor
        self.upstream = upstream
        self.providers = providers
        self.planner = planner
        self.metrics = metrics
        self.tracing = tracing or Tracing(None)
        self.picker = DeploymentPicker(list(providers.values()), reactor, cooldown=config.retry.cooldown,
                                       failures=config.retry.breaker_failures, routing=config.routing)
        self.relays: set[StreamRelay] = previous.relays if previous is not None else set()
        #: Upstream calls still waiting for response headers (cancelled at the drain timeout).
        self.waiting: Waiting = previous.waiting if previous is not None else Waiting()
        #: Deployments that answered "not found": breaker, one log line, rediscovery.
        self.stale = StaleDeployments(self.picker, metrics=metrics)

    def start(self) -> None:
        """
        Start the providers' background work (SAP AI Core: check the service key, discover deployments);
        nothing waits for it, and it never stops the gateway from serving.
        """
        for provider in self.providers.values():
            provider.start()

    def stop(self, keep: Gateway | None = None) -> None:
        """
        Stop the providers' background work, except that of providers C{keep} (a reload's successor) still
        uses (a subaccount whose service key did not change keeps its token cache).
        """
        kept = {id(p) for p in keep.providers.values()} if keep is not None else set()
        for provider in self.providers.values():
            if id(provider) not in kept:
                provider.stop()

    async def forward(self, record: RequestRecord, request: IGatewayRequest, model: str,
                      client_request: ClientRequest) -> tuple[Any, Outcome]:
        """
        Send C{client_request} to the deployments of C{model} until one answers.

        Returns the client's JSON for a whole response (for a stream, C{b""} once it has been written to
        C{request}), and the outcome.

        @raise Undelivered: no deployment could answer, or the gateway failed on an upstream's answer; its
            error is for the client (in its dialect).
        @raise HungUp: the client went away before an upstream answered.
        @raise Exception: anything else is raised before an attempt was made (the client's body could not be
            converted: the frame answers 400).
        """
        tally = _Tally()
        try:
            return await self._attempts(tally, record, request, model, client_request)
        except (GatewayError, Undelivered) as e:
            if isinstance(e, Undelivered):
                raise
            raise Undelivered(e, tally.outcome()) from None
        except CancelledError as e:
            if isinstance(e, HungUp):
                raise
            raise HungUp(tally.outcome(client_hung_up=True)) from None
        except Exception:
            if not tally.attempts:
                raise
            # Something went upstream, so whatever broke is the gateway's, not the client's body.
            log.failure("unexpected error while handling an upstream's answer to {request_id}",
                        request_id=record.request_id)
            error = GatewayError("api_error", f"internal error in the gateway; request id {record.request_id}")
            raise Undelivered(error, tally.outcome()) from None

    async def _attempts(self, tally: _Tally, record: RequestRecord, request: IGatewayRequest, model: str,
                        client_request: ClientRequest) -> tuple[Any, Outcome]:
        policy = self.config.retry
        deployments = self.picker.candidates(model)
        if not deployments:
            raise GatewayError("not_found", f"no deployment serves model {model}")
        # Affinity chooses within the first tier (the balanced SAP subaccounts, or a routed model's first
        # provider): a session never skips SAP for a vendor fallback while SAP is healthy.
        tier, fallbacks = self.picker.tiers(model, deployments)
        session = session_route(request, client_request.call.body, tier, self.picker.healthy,
                                self.config.session_affinity)
        if session is not None:
            deployments = self.picker.healthy_first(session.order + fallbacks)
        exchange_for = self.planner.exchanges(client_request, model)
        deadline_wait = policy.max_wait
        waited = 0.0
        last: GatewayError | None = None
        index = 0
        refreshed_credentials = False
        retried_stale = False
        while tally.attempts < policy.attempts:
            deployment = deployments[index % len(deployments)]
            if tally.attempts > 0 and tally.deployment and tally.deployment != deployment.id:
                tally.failovers += 1
                if self.metrics is not None:
                    self.metrics.failover(model)
            provider = self.providers[deployment.provider]
            exchange = exchange_for(provider)
            announce_dropped_tools(request, exchange.dropped_tools)
            tally.attempts += 1
            tally.provider = deployment.provider
            tally.deployment = deployment.id
            url = provider.url(deployment, exchange.request)
            traceparent = record.traceparent
            span = credential_span = None
            if record.span is not None:  # a span only when tracing is on
                span = self.tracing.child(record.span, "upstream /" + exchange.request.operation, client=True,
                                          subaccount=deployment.provider, deployment=deployment.id,
                                          attempt=tally.attempts)
                if span is not None:
                    traceparent = self.tracing.traceparent(span) or traceparent
                if self.tracing.enabled and not provider.credentials_ready():
                    credential_span = self.tracing.child(record.span, provider.credential_span,
                                                         subaccount=provider.name)
            try:
                headers = await provider.authorize(deployment, url, exchange.request.body, traceparent)
                Tracing.end(credential_span)
                if exchange.request.headers:
                    headers = with_headers(headers, exchange.request.headers)
            except GatewayError as e:
                Tracing.end(credential_span, error=str(e))
                Tracing.end(span, error="credentials")
                last = e
                refused = e.code == UPSTREAM_AUTH_FAILED
                self._upstream_error(deployment, "auth" if refused else "token")
                if refused and self.metrics is not None:
                    self.metrics.upstream_auth_failed(deployment.provider)
                # No credentials for this provider now: its other deployments are skipped, not tried again.
                deployments = without_provider(deployments, deployment.provider)
                if not deployments:
                    break
                index %= len(deployments)
                tally.attempts -= 1
                continue
            try:
                response = await self._post(url, headers, exchange.request.body)
                Tracing.end(span, **{"http.status_code": response.code})
            except NETWORK_ERRORS as e:
                Tracing.end(span, error=type(e).__name__)
                if cancelled(e):
                    # The client went away before the upstream answered: nothing to retry for.
                    raise CancelledError() from None
                if stale_connection(e) and not retried_stale:
                    # A POST is never retried by the pool itself; nothing was sent, so once more on a fresh
                    # connection.
                    retried_stale = True
                    tally.attempts -= 1
                    continue
                last = network_error(e)
                self._upstream_error(deployment, type(e).__name__)
                self.picker.failed(deployment)
                index += 1
                if index % len(deployments) == 0:
                    waited += await self._backoff(tally, None, waited, deadline_wait)
                continue
            tally.reached_upstream = True
            status = response.code
            refusal: str | None = None
            if status == 401:
                await discard(response)
                if provider.credentials_rejected(deployment, headers) and not refreshed_credentials:
                    # Credentials the upstream no longer accepts: get fresh ones and try the same deployment.
                    refreshed_credentials = True
                    tally.attempts -= 1
                    continue
                refusal = f"deployment {deployment.id} answered HTTP 401 to fresh credentials"
            elif status == 403 and refuses_gateway(provider, deployment, headers, status):
                # A provider whose API refuses credentials with a 403 (Bedrock: a signature or key it does not
                # accept).
                await discard(response)
                refusal = f"deployment {deployment.id} answered HTTP 403"
            if refusal is not None:
                # The gateway's own credentials, never the client's (whose key is not sent upstream): a 502
                # naming the provider, and on to the next provider's deployments.
                last = upstream_auth_failed(provider.name, refusal)
                self._upstream_error(deployment, "auth")
                if self.metrics is not None:
                    self.metrics.upstream_auth_failed(deployment.provider)
                deployments = without_provider(deployments, deployment.provider)
                if not deployments:
                    break
                index %= len(deployments)
                continue
            if status == 404:
                error = await upstream_error(response)
                if not self.stale.gone(deployment, provider, error.message):
                    raise error
                # The deployment itself is gone (recreated, stopped, deleted): the client's request was fine.
                last = stale_error(model, deployment.id)
                self._upstream_error(deployment, "stale")
                deployments = [d for d in deployments if d.url != deployment.url]
                if not deployments:
                    break
                index %= len(deployments)
                continue
            if status == 429 or status >= 500:
                error = await upstream_error(response)
                last = error
                self._upstream_error(deployment, str(status))
                if status == 429:
                    delay = self._retry_delay(tally, error.retry_after)
                    if waited + delay <= deadline_wait and len(deployments) == 1:
                        waited += delay
                        await sleep(self.reactor, delay)
                        continue
                else:
                    self.picker.failed(deployment)
                index += 1
                if index % len(deployments) == 0 and tally.attempts < policy.attempts:
                    waited += await self._backoff(tally, error.retry_after, waited, deadline_wait)
                continue
            if status >= 400:
                # The client's own mistake, in the upstream's words: retrying elsewhere would not help.
                raise await upstream_error(response)
            self.picker.succeeded(deployment)
            provider.answered()
            if session is not None and self.metrics is not None:
                self.metrics.session_affinity(session.outcome(deployment))
            if not exchange.stream:
                try:
                    return await self._whole(tally, response, exchange)
                except BodyFailed as e:
                    # Reset mid-body: nothing reached the client yet, so the next deployment may answer.
                    last = e.error
                    self._upstream_error(deployment, "body")
                    self.picker.failed(deployment)
                    index += 1
                    continue
            pipeline = exchange.pipeline(content_type(response))
            client = exchange.client
            # From the first byte the client gets, no other attempt can follow: the request's planned bodies and
            # the client's own go, so a stream of minutes does not hold them (the prompt estimate stays).
            del exchange

            def committed() -> None:
                exchange_for.forget()
                client_request.call.committed(record.family)

            try:
                return await self._stream(tally, request, response, pipeline, client, committed)
            except FailedBeforeFirstByte as e:
                last = e.error
                self._upstream_error(deployment, "stream")
                self.picker.failed(deployment)
                index += 1
                continue
        if last is None:
            last = GatewayError("overloaded", f"no deployment of model {model} could be tried")
        raise last

    def _upstream_error(self, deployment: Deployment, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_error(deployment.provider, kind)

    def _retry_delay(self, tally: _Tally, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = self.config.retry.backoff * (2 ** max(tally.attempts - 1, 0))
        return random.uniform(0, base)

    async def _backoff(self, tally: _Tally, retry_after: float | None, waited: float, limit: float) -> float:
        delay = min(self._retry_delay(tally, retry_after), max(limit - waited, 0.0))
        if delay > 0:
            await sleep(self.reactor, delay)
        return delay

    def _post(self, url: bytes, headers: Any, body: bytes) -> Any:
        d = self.upstream.post(url, headers, body)
        return _HeadersDeadline(d, self.waiting, self.reactor, self.config.timeouts.headers).d

    async def _whole(self, tally: _Tally, response: IResponse, exchange: Exchange) -> tuple[dict[str, Any], Outcome]:
        raw = await read_whole(response, self.reactor, timeout=self.config.timeouts.idle,
                               limit=self.config.max_response_bytes)
        first_byte_at = self.reactor.seconds()
        upstream = _whole_json(raw)
        usage = exchange.usage(upstream)
        try:
            converted = exchange.convert(upstream)
        except UnusableAnswer as e:
            raise GatewayError("bad_gateway", e.message) from None
        if converted is upstream:
            # Edited in place by a converter that knows nothing of the JSON it came with: that JSON is stale.
            converted = dict(converted)
        return converted, tally.outcome(usage=usage, output_chars=response_text_chars(converted),
                                        first_byte_at=first_byte_at)

    async def _stream(self, tally: _Tally, request: IGatewayRequest, response: IResponse, pipeline: StreamPipeline,
                      client: IClientAPI, committed: Callable[[], None]) -> tuple[bytes, Outcome]:
        def commit() -> None:
            committed()
            request.setResponseCode(200)
            request.responseHeaders.setRawHeaders(b"content-type", [b"text/event-stream; charset=utf-8"])
            request.responseHeaders.setRawHeaders(b"cache-control", [b"no-cache"])
            request.responseHeaders.setRawHeaders(b"x-accel-buffering", [b"no"])

        relay = StreamRelay(request, pipeline, client, self.reactor, idle_timeout=self.config.timeouts.idle,
                            keepalive=self.config.timeouts.keepalive, on_first_write=commit,
                            drain_on_hangup=self.config.on_client_hangup == "drain",
                            write_stall=self.config.timeouts.write_stall)
        self.relays.add(relay)
        if self.metrics is not None:
            self.metrics.stream_opened()
        try:
            response.deliverBody(relay)
            done = await relay.done
        finally:
            self.relays.discard(relay)
            if self.metrics is not None:
                self.metrics.stream_closed()
        error_type = done.error.kind if done.error is not None else pipeline.error
        outcome = tally.outcome(usage=pipeline.usage, output_chars=pipeline.output_chars,
                                first_byte_at=done.first_byte_at, client_hung_up=done.client_hung_up,
                                error_type=error_type)
        if relay.drained is not None and not relay.drained.called:
            # The client is gone, the upstream is still being read for the usage its last events report.
            final: Deferred[Outcome] = relay.drained.addCallback(
                lambda _: attrs.evolve(outcome, usage=pipeline.usage, output_chars=pipeline.output_chars))
            outcome = attrs.evolve(outcome, drained=final)
        return b"", outcome

    @property
    def active_streams(self) -> int:
        return len(self.relays)

    def end_streams(self, error: GatewayError) -> None:
        """
        End every stream now with C{error} as its last event (shutdown after the drain time).
        """
        for relay in list(self.relays):
            relay.end_with(error)


def content_type(response: IResponse) -> str:
    """The upstream response's Content-Type, which says how its stream is framed."""
    return (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")
