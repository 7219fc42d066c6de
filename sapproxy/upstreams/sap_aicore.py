"""
SAP AI Core subaccounts as providers: OAuth tokens (one cache per subaccount), AI Core headers, and the URL of
each wire format's operations under a deployment.

Every upstream call needs a bearer token from the subaccount's XSUAA.  Fetching one takes a round trip, so
the cache keeps it until shortly before it expires and refreshes it ahead of time in the background; and
however many requests wait for a cold cache at once, exactly one fetch is in flight.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from attrs import frozen
from twisted.internet.defer import Deferred, CancelledError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from zope.interface import implementer

from sapproxy.compat import headers_like
from sapproxy.config import GatewayConfig, ServiceKey, SubAccount, is_reasoning_model
from sapproxy.dispatch.picker import Deployment
from sapproxy.errors import GatewayError
from sapproxy.interfaces import IProvider
from sapproxy.models import family_of
from sapproxy.translate.wire import WireRequest, WireTarget
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.http import url_bytes
from sapproxy.translate.model_limits import max_output_tokens
from sapproxy.upstreams.sap_credentials import (
    CredentialGuard, check_service_key, is_rejection, mtls_clients, token_request,
)
from sapproxy.upstreams.sap_discovery import SubaccountDeployments, ai_api_fetcher
from sapproxy.upstreams.sap_health import credential_error, is_stale_deployment

log = Logger()


@frozen
class TokenGrant:
    access_token: str
    expires_in: float


class TokenFetchError(Exception):
    """
    The token endpoint failed; C{str()} is safe to show a client (no secret, no token).

    @ivar rejected: the endpoint refused the credentials themselves (HTTP 401/403): retrying will not help.
    """

    def __init__(self, message: str, *, rejected: bool = False) -> None:
        super().__init__(message)
        self.rejected = rejected


class XsuaaClient:
    """
    C{POST {url}/oauth/token?grant_type=client_credentials} with HTTP Basic C{clientid:clientsecret}.
    """

    def __init__(self, http: Any, reactor: IReactorTime, timeout: float = 30.0,
                 client_for: Callable[[ServiceKey], Any] | None = None) -> None:
        """
        @param client_for: the HTTP client for a key's token requests when not C{http} (X.509 keys: mTLS).
        """
        self._http = http
        self._reactor = reactor
        self._timeout = timeout
        self._client_for = client_for

    async def fetch(self, key: ServiceKey) -> TokenGrant:
        headers, form = token_request(key)
        http = (self._client_for(key) if self._client_for is not None else None) or self._http
        try:
            d = http.request(
                "POST", key.token_url, headers=headers, data=form, allow_redirects=False, unbuffered=True,
            )
            d.addTimeout(self._timeout, self._reactor)
            response = await d
            body = await response.content()
        except CancelledError:
            raise
        except Exception as e:
            raise TokenFetchError(f"token endpoint unreachable: {type(e).__name__}") from None
        if response.code != 200:
            raise TokenFetchError(f"token endpoint answered HTTP {response.code}", rejected=is_rejection(response.code))
        try:
            grant = json.loads(body)
            return TokenGrant(str(grant["access_token"]), float(grant.get("expires_in", 3600)))
        except (ValueError, KeyError, TypeError):
            raise TokenFetchError("token endpoint answered without an access_token") from None


class TokenCache:
    """
    The current token of one subaccount.

    @param margin: seconds before expiry at which a token is no longer handed out.
    @param refresh_ahead: seconds before that at which a background refresh starts, so requests never
        wait for a fetch while traffic flows.
    """

    def __init__(
        self,
        name: str,
        key: ServiceKey,
        fetch: Callable[[ServiceKey], Deferred[TokenGrant]],
        clock: IReactorTime,
        margin: float = 300.0,
        refresh_ahead: float = 300.0,
        on_refresh: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._refresh_ahead = refresh_ahead
        self._on_refresh = on_refresh
        self._token: str | None = None
        self._valid_until = 0.0
        self._waiters: list[Deferred[str]] | None = None
        self._refresh_call: IDelayedCall | None = None
        self.fetches = 0
        self.last_error: str | None = None
        self.guard = CredentialGuard(clock)
        self._replacing = False
        self._replacement: str | None = None

    @property
    def refresh_scheduled(self) -> bool:
        """
        Whether a refresh of the token ahead of its expiry is scheduled.
        """
        return self._refresh_call is not None and self._refresh_call.active()

    def get(self) -> Deferred[str]:
        """
        A valid token, at once when cached; otherwise after the one fetch in flight.  While the subaccount
        backs off after a failed fetch, the failure is repeated at once, without a fetch.
        """
        if self._token is not None and self._clock.seconds() < self._valid_until:
            return _succeed(self._token)
        refusal = self.guard.refusal() if self._waiters is None else None
        if refusal is not None:
            failed: Deferred[str] = Deferred()
            failed.errback(TokenFetchError(refusal, rejected=self.guard.rejected))
            return failed
        waiter: Deferred[str] = Deferred()
        if self._waiters is None:
            self._waiters = [waiter]
            self._start_fetch()
        else:
            self._waiters.append(waiter)
        return waiter

    def invalidate(self, token: str) -> None:
        """
        The upstream refused C{token}: forget it, unless a newer one has already replaced it.
        """
        if self._token == token:
            self._token = None
            self._valid_until = 0.0
            self._replacing = True

    def is_replacement(self, token: str) -> bool:
        """
        Whether C{token} was fetched to replace one the upstream refused.
        """
        return self._replacement is not None and token == self._replacement

    def refused(self, token: str, reason: str) -> None:
        """
        The upstream refused C{token} although it was fresh: the credentials themselves are not accepted
        (a revoked key, a subaccount without access).  Forget it and back off as after a rejected fetch.
        """
        self.invalidate(token)
        self.last_error = reason
        self.guard.failed(reason, rejected=True)
        log.warn("subaccount {name}: a fresh token was refused ({reason}); backing off", name=self.name,
                 reason=reason)

    def state(self) -> dict[str, Any]:
        now = self._clock.seconds()
        valid = self._token is not None and now < self._valid_until
        return {
            "token": "valid" if valid else ("fetching" if self._waiters is not None else "none"),
            "expires_in": round(self._valid_until - now) if valid else None,
            "fetches": self.fetches,
            "last_error": self.last_error,
            **self.guard.state(),
        }

    def stop(self) -> None:
        if self._refresh_call is not None and self._refresh_call.active():
            self._refresh_call.cancel()
        self._refresh_call = None

    def _start_fetch(self) -> None:
        self.fetches += 1
        d = self._fetch(self.key)
        d.addCallbacks(self._fetched, self._failed)

    def _fetched(self, grant: TokenGrant) -> None:
        now = self._clock.seconds()
        expires_in = clamp_lifetime(grant.expires_in, self.name)
        lifetime = max(expires_in - self._margin, expires_in / 2)
        self._token = grant.access_token
        self._valid_until = now + lifetime
        self.last_error = None
        self._replacement = grant.access_token if self._replacing else None
        self._replacing = False
        self.guard.succeeded()
        # Waiters first: nothing after this may keep them waiting.
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            waiter.callback(grant.access_token)
        self._schedule_refresh(max(lifetime - self._refresh_ahead, lifetime * 0.75))
        if self._on_refresh:
            self._on_refresh(self.name, "ok")

    def _failed(self, failure: Failure) -> None:
        self.last_error = str(failure.value) or type(failure.value).__name__
        rejected = isinstance(failure.value, TokenFetchError) and failure.value.rejected
        self.guard.failed(self.last_error, rejected=rejected)
        log.warn("token fetch for subaccount {name} failed: {error}", name=self.name, error=self.last_error)
        if self._on_refresh:
            self._on_refresh(self.name, "error")
        waiters, self._waiters = self._waiters or [], None
        error = failure.value if isinstance(failure.value, TokenFetchError) else TokenFetchError(self.last_error)
        if self._token is not None and self._clock.seconds() < self._valid_until:
            # A background refresh failed while the current token is still good: keep serving with it.
            for waiter in waiters:
                waiter.callback(self._token)
            return
        for waiter in waiters:
            waiter.errback(error)

    def _schedule_refresh(self, delay: float) -> None:
        self.stop()
        self._refresh_call = self._clock.callLater(delay, self._refresh)

    def _refresh(self) -> None:
        """
        Fetch the next token while the current one is still good; on failure keep the current one.
        """
        self._refresh_call = None
        if self._waiters is not None:
            return
        self._waiters = []
        self._start_fetch()


#: The shortest and longest token lifetimes believed, in seconds.  A token endpoint that says 0 would make
#: every request fetch a token (2,500 fetches a second were measured); a negative one wedged the cache.
MIN_LIFETIME = 60.0
MAX_LIFETIME = 7 * 86400.0


def clamp_lifetime(expires_in: float, name: str) -> float:
    """
    C{expires_in} within [L{MIN_LIFETIME}, L{MAX_LIFETIME}], with a warning when it was not (NaN included).
    A token that really lives shorter is refused upstream with a 401, which fetches a new one.
    """
    if math.isfinite(expires_in) and MIN_LIFETIME <= expires_in <= MAX_LIFETIME:
        return expires_in
    clamped = MAX_LIFETIME if expires_in == math.inf or (math.isfinite(expires_in) and expires_in > MAX_LIFETIME) \
        else MIN_LIFETIME
    log.warn("token endpoint of subaccount {name} gave expires_in {given}; using {used:g} s", name=name,
             given=expires_in, used=clamped)
    return clamped


#: Models whose wire format and target a provider keeps (more than any config names).
_MAX_CACHED_MODELS = 1024


def _succeed(value: str) -> Deferred[str]:
    d: Deferred[str] = Deferred()
    d.callback(value)
    return d


def upstream_headers(token: str, resource_group: str, zone: str | None, traceparent: str | None = None) -> Headers:
    """
    The headers of an inference call: SAP AI Core's bearer token, resource group and (when the service key
    names one) tenant.

    Every call of a token has the same ones: they are encoded and checked once (L{Headers} does both on every
    set) and each call gets its own copy of them (L{headers_like}).
    """
    key = (token, resource_group, zone)
    checked = _CHECKED_HEADERS.get(key)
    if checked is None:
        raw = {
            b"authorization": [b"Bearer " + token.encode("latin-1")],
            b"ai-resource-group": [resource_group.encode("utf-8")],
            b"content-type": [b"application/json"],
        }
        if zone:
            raw[b"ai-tenant-id"] = [zone.encode("utf-8")]
        checked = Headers(raw)
        if len(_CHECKED_HEADERS) >= 64:  # tokens are replaced every few hours; a few subaccounts at a time
            _CHECKED_HEADERS.clear()
        _CHECKED_HEADERS[key] = checked
    headers = headers_like(checked)
    if traceparent:
        headers.setRawHeaders(b"traceparent", [traceparent.encode("latin-1")])
    return headers


#: The checked headers of each (token, resource group, tenant) in use (L{upstream_headers}).
_CHECKED_HEADERS: dict[tuple[str, str, str | None], Headers] = {}


#: The first Azure OpenAI api-version with the Responses API; older configured versions are raised to it there.
RESPONSES_API_VERSION = "2025-04-01-preview"


def _suffix(deployment: Deployment, request: WireRequest, target: WireTarget, api_version: str) -> str:
    """
    Where an operation of each wire format lives under an AI Core deployment URL.
    """
    operation, stream = request.operation, request.stream
    if operation == "invoke":
        return "/invoke-with-response-stream" if stream else "/invoke"
    if operation == "converse":
        return "/converse-stream" if stream else "/converse"
    if operation == "generateContent":
        return f"/models/{target.model}:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")
    if operation == "responses" and api_version < RESPONSES_API_VERSION:
        api_version = RESPONSES_API_VERSION  # the Responses API came with this version
    # Azure-OpenAI-style: chat/completions, embeddings (and whatever else the format names).
    return f"/{operation}?api-version={api_version}"


@implementer(IProvider)
class SapAiCoreProvider:
    """
    One SAP AI Core subaccount: its deployments (configured and discovered), XSUAA tokens, and the AI Core
    headers of each call.
    """

    kind = "sap_aicore"
    credential_span = "sap.token"
    balanced = True
    #: AI Core's 403s are about what the client asked for (a resource group, a scenario), not the gateway's key.
    refuses_credentials_with: tuple[int, ...] = ()

    def __init__(self, account: SubAccount, config: GatewayConfig, tokens: TokenCache,
                 discovery: SubaccountDeployments | None = None, clock: IReactorTime | None = None) -> None:
        """
        @param discovery: what the subaccount serves now; its configured deployments when not given.
        """
        self.name = account.name
        self.account = account
        self.tokens = tokens
        self._config = config
        self.discovery = discovery if discovery is not None else SubaccountDeployments(
            account, config, clock if clock is not None else tokens._clock)
        self._deployments: dict[str, list[Deployment]] = {}
        self._built_for = -1
        #: Set when a reload's successor took over the token cache: stopping this provider leaves it running.
        self.tokens_handed_on = False
        #: (deployment URL, operation, stream) -> request-line bytes; bounded by the config and the deployments.
        self._urls: dict[tuple[str, str, bool], bytes] = {}
        #: Per model, its wire format and target: they follow from the config alone (which a reload replaces
        #: with a new provider), and every attempt asks for both.
        self._wire_formats: dict[str, str] = {}
        self._targets: dict[str, WireTarget] = {}

    @property
    def generation(self) -> int:
        """
        Changes whenever L{models} or L{deployments} do (discovery found or lost some).
        """
        return self.discovery.generation

    def _current(self) -> dict[str, list[Deployment]]:
        if self._built_for != self.discovery.generation:
            self._deployments = {model: [Deployment(self.name, url, model) for url in urls]
                                 for model, urls in self.discovery.models.items()}
            self._built_for = self.discovery.generation
            if len(self._urls) > 10_000:
                self._urls.clear()
        return self._deployments

    def models(self) -> list[str]:
        return list(self._current())

    def deployments(self, model: str) -> list[Deployment]:
        return self._current().get(model, [])

    def wire_format(self, model: str) -> str:
        found = self._wire_formats.get(model)
        if found is None:
            found = self._wire_format(model)
            if len(self._wire_formats) < _MAX_CACHED_MODELS:
                self._wire_formats[model] = found
        return found

    def _wire_format(self, model: str) -> str:
        settings = self._config.model_settings(model)
        family = family_of(model, settings)
        if family == "claude":
            return "converse" if settings.converse else "bedrock_invoke"
        if family == "gemini":
            return "gemini"
        return "openai_responses" if settings.responses_only else "openai_chat"

    def also_speaks(self, model: str) -> tuple[str, ...]:
        """
        Wire formats C{model}'s deployments serve besides L{wire_format}'s, for clients that speak one of them
        (the plan prefers a client's own format): AI Core's GPT deployments answer the Responses API too.
        """
        return ("openai_responses",) if self.wire_format(model) == "openai_chat" else ()

    def target(self, model: str) -> WireTarget:
        found = self._targets.get(model)
        if found is None:
            found = self._target(model)
            if len(self._targets) < _MAX_CACHED_MODELS:
                self._targets[model] = found
        return found

    def _target(self, model: str) -> WireTarget:
        settings = self._config.model_settings(model)
        upstream = settings.upstream_model or model
        return WireTarget(upstream, reasoning=is_reasoning_model(model),
                          max_output_tokens=settings.max_output_tokens or max_output_tokens(upstream))

    def url(self, deployment: Deployment, request: WireRequest) -> bytes:
        key = (deployment.url, request.operation, request.stream)
        url = self._urls.get(key)
        if url is None:
            suffix = _suffix(deployment, request, self.target(deployment.model),
                             self._config.api_version(deployment.model))
            url = self._urls[key] = url_bytes(deployment.url + suffix)
        return url

    def credentials_ready(self) -> bool:
        return bool(self.tokens.state()["token"] == "valid")

    def authorize(self, deployment: Deployment, url: bytes, body: bytes,
                  traceparent: str | None) -> Deferred[Headers]:
        account = self.account

        def headers(token: str) -> Headers:
            return upstream_headers(token, account.resource_group, account.service_key.identityzoneid, traceparent)

        def failed(failure: Failure) -> Failure:
            failure.trap(TokenFetchError)
            # Refused credentials: a 502 naming the subaccount (never the client's 401); unreachable: a 503.
            raise credential_error(self.name, failure.value)  # type: ignore[arg-type]

        return self.tokens.get().addCallbacks(headers, failed)

    def credentials_rejected(self, deployment: Deployment, headers: Headers) -> bool:
        sent = (headers.getRawHeaders(b"authorization") or [b""])[0]
        token = sent[len(b"Bearer "):].decode("latin-1")
        if self.tokens.is_replacement(token):
            # A token fetched to replace a refused one is refused too: the credentials themselves are not
            # accepted (a revoked key, a subaccount without access); the subaccount backs off.
            self.tokens.refused(token, f"deployment {deployment.id} answered HTTP 401 to a fresh token")
            return False
        self.tokens.invalidate(token)
        return True

    def answered(self) -> None:
        pass

    def deployment_gone(self, deployment: Deployment, message: str) -> bool:
        """
        Whether a 404 saying C{message} means C{deployment} itself is gone (AI Core's C{Deployment <id> not
        found ...}, not a path or model the client named); if so, look for this subaccount's deployments again
        (when it discovers).
        """
        if not is_stale_deployment(message, deployment.id):
            return False
        self.discovery.refresh_soon()
        return True

    def start(self) -> None:
        """
        Check the service key (logged; the gateway serves whatever happens) and start discovery.
        """
        check_service_key(self.name, self.tokens)
        self.discovery.start()

    def health(self) -> dict[str, Any]:
        return {"resource_group": self.account.resource_group, "models": self.models(),
                **self.tokens.state(), **self.discovery.state()}

    def stop(self) -> None:
        if not self.tokens_handed_on:
            self.tokens.stop()
        self.discovery.stop()


def build(account: SubAccount, context: ProviderContext, previous: Any = None) -> SapAiCoreProvider:
    """
    The provider of one subaccount.  A reload keeps the token cache of a subaccount whose service key did not
    change (C{previous}: the provider it replaces), so no needless token fetch happens, and what its
    discovery found.
    """
    if isinstance(previous, SapAiCoreProvider) and previous.tokens.key == account.service_key:
        tokens = previous.tokens
        previous.tokens_handed_on = True
    else:
        xsuaa = XsuaaClient(context.http, context.reactor, timeout=context.config.timeouts.token,
                            client_for=mtls_clients(context.reactor, context.config))
        metrics = context.metrics

        def refreshed(subaccount: str, outcome: str) -> None:
            if metrics is not None:
                metrics.token_refresh(subaccount, outcome)

        tokens = TokenCache(account.name, account.service_key, lambda key: Deferred.fromCoroutine(xsuaa.fetch(key)),
                            context.reactor, on_refresh=refreshed)
    discovery = SubaccountDeployments(
        account, context.config, context.reactor,
        fetch_json=ai_api_fetcher(context.http, tokens, context.reactor, timeout=context.config.timeouts.token),
        metrics=context.metrics,
        previous=previous.discovery if isinstance(previous, SapAiCoreProvider) else None)
    return SapAiCoreProvider(account, context.config, tokens, discovery)
