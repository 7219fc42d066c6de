"""
The gateway's Prometheus metrics, on a registry of their own.

A private L{CollectorRegistry} (not prometheus_client's global one) lets tests, and several gateway apps in one
process, each have their own counters.  The per-request methods cache the labelled children they use, so the
label lookup (a lock and a dict in prometheus_client) is paid once per label combination, not per request.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: Seconds; from a fast cached reply to a long reasoning stream.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, float("inf"),
)
#: Time to first byte is shorter: the upstream's queueing plus the prompt's prefill.
TTFB_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, float("inf"),
)


class GatewayMetrics:
    """
    Every metric the gateway exports, and the calls that move them.

    Label values are used as given; callers pass bounded sets (configured models and subaccounts, endpoint
    routes, HTTP statuses, key names), never free text from clients.
    """

    def __init__(self, *, version: str = "", registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "sapproxy_requests", "Client requests finished, by endpoint, model, subaccount and HTTP status.",
            ("endpoint", "model", "subaccount", "status"), registry=r,
        )
        self._latency = Histogram(
            "sapproxy_request_duration_seconds", "Time from request to the end of the response.",
            ("endpoint", "model", "stream"), buckets=LATENCY_BUCKETS, registry=r,
        )
        self._ttfb = Histogram(
            "sapproxy_time_to_first_byte_seconds", "Time from request to the first response byte to the client.",
            ("endpoint", "model", "stream"), buckets=TTFB_BUCKETS, registry=r,
        )
        self._tokens = Counter(
            "sapproxy_tokens", "Tokens by direction (prompt, completion, cached) and model.",
            ("model", "direction"), registry=r,
        )
        self._upstream_errors = Counter(
            "sapproxy_upstream_errors", "Failed upstream attempts, by subaccount and kind.",
            ("subaccount", "kind"), registry=r,
        )
        self._failovers = Counter(
            "sapproxy_failovers", "Requests moved to another deployment after a failure.", ("model",), registry=r,
        )
        self._active_streams = Gauge(
            "sapproxy_active_streams", "Streaming responses in progress.", registry=r,
        )
        self._token_refreshes = Counter(
            "sapproxy_token_refreshes", "OAuth token fetches for SAP AI Core, by subaccount and outcome.",
            ("subaccount", "outcome"), registry=r,
        )
        self._rate_limited = Counter(
            "sapproxy_rate_limited", "Requests refused by a rate limit, by key name and limit (rpm, tpm).",
            ("key_name", "reason"), registry=r,
        )
        self._rows_dropped = Counter(
            "sapproxy_usage_rows_dropped", "Usage rows given up on (store unreachable for too long).", registry=r,
        )
        self._auth_failures = Counter(
            "sapproxy_upstream_auth_failures", "SAP credentials refused (token endpoint 401/403, or a fresh token "
            "refused by a deployment), by subaccount.", ("subaccount",), registry=r,
        )
        self._stale = Counter(
            "sapproxy_stale_deployments", "Deployments that answered 'not found' (gone), by subaccount.",
            ("subaccount",), registry=r,
        )
        self._discovery = Counter(
            "sapproxy_discovery_refreshes", "Deployment discoveries from the AI API, by subaccount and outcome.",
            ("subaccount", "outcome"), registry=r,
        )
        self._affinity = Counter(
            "sapproxy_session_affinity", "Requests with a session key: served by the session's deployment (hit) "
            "or by another one because it was unhealthy (move).", ("outcome",), registry=r,
        )
        self._shed = Counter(
            "sapproxy_connections_shed", "Incomplete client connections closed to keep room for others when open "
            "connections reached the descriptor budget (a slow-header flood).", registry=r,
        )
        Info("sapproxy_build", "The gateway's version.", registry=r).info({"version": version or _version()})
        self._request_children: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self._token_children: dict[str, tuple[Any, Any, Any]] = {}

    def request_finished(
        self,
        endpoint: str,
        model: str,
        subaccount: str,
        status: int,
        latency_s: float,
        ttfb_s: float | None,
        stream: bool,
    ) -> None:
        """
        Count one finished client request and observe its latency and (if any byte was sent) time to first byte.
        """
        key = (endpoint, model, subaccount, status, stream)
        children = self._request_children.get(key)
        if children is None:
            flag = "true" if stream else "false"
            children = self._request_children[key] = (
                self._requests.labels(endpoint, model, subaccount, str(status)),
                self._latency.labels(endpoint, model, flag),
                self._ttfb.labels(endpoint, model, flag),
            )
        count, latency, ttfb = children
        count.inc()
        latency.observe(latency_s)
        if ttfb_s is not None:
            ttfb.observe(ttfb_s)

    def tokens(self, model: str, prompt: int, completion: int, cached: int) -> None:
        children = self._token_children.get(model)
        if children is None:
            children = self._token_children[model] = (
                self._tokens.labels(model, "prompt"),
                self._tokens.labels(model, "completion"),
                self._tokens.labels(model, "cached"),
            )
        if prompt:
            children[0].inc(prompt)
        if completion:
            children[1].inc(completion)
        if cached:
            children[2].inc(cached)

    def upstream_error(self, subaccount: str, kind: str) -> None:
        self._upstream_errors.labels(subaccount, kind).inc()

    def failover(self, model: str) -> None:
        self._failovers.labels(model).inc()

    def stream_opened(self) -> None:
        self._active_streams.inc()

    def stream_closed(self) -> None:
        self._active_streams.dec()

    def token_refresh(self, subaccount: str, outcome: str) -> None:
        self._token_refreshes.labels(subaccount, outcome).inc()

    def rate_limited(self, key_name: str, reason: str) -> None:
        self._rate_limited.labels(key_name, reason).inc()

    def upstream_auth_failed(self, subaccount: str) -> None:
        self._auth_failures.labels(subaccount).inc()

    def stale_deployment(self, subaccount: str) -> None:
        self._stale.labels(subaccount).inc()

    def discovery(self, subaccount: str, outcome: str) -> None:
        self._discovery.labels(subaccount, outcome).inc()

    def session_affinity(self, outcome: str) -> None:
        self._affinity.labels(outcome).inc()

    def connection_shed(self) -> None:
        self._shed.inc()

    def usage_rows_dropped(self, n: int = 1) -> None:
        """
        Fit for L{sapproxy.usage.store.UsageStore.on_drop}.
        """
        self._rows_dropped.inc(n)

    def render(self) -> tuple[bytes, str]:
        """
        The text exposition of every metric, and its content type, for a C{/metrics} response.
        """
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sapproxy")
    except PackageNotFoundError:
        return "unknown"
