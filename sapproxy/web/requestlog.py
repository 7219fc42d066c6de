"""
The log line and metrics of a request no API route accounted for: an unknown path (404), a wrong method
(405), a body refused before it was read (413), and the operator pages (C{/admin}, and C{/health} and
C{/metrics} when they refuse a caller).

API routes account for their own requests (L{sapproxy.accounting.Accounting}, with model, key and tokens);
everything else the site answers goes through here, so every status a client saw is in the log and in
C{sapproxy_requests}.
"""

from __future__ import annotations

from typing import Any

from sapproxy.logs import QuickLogger

log = QuickLogger(namespace="sapproxy.request")

#: The endpoint label of a path no route matched: free text from clients must not create metric series.
UNMATCHED = "(unmatched)"
#: Probes and scrapes: answered every few seconds by machines, so a successful one is neither logged nor
#: counted (it would drown the requests people make); a refused one (a wrong metrics token) is.
QUIET = frozenset({"/health", "/metrics"})


def endpoint_label(path: str, status: int) -> str:
    """
    The C{endpoint} label for C{path}: the path itself when a route matched it (every route of the gateway is
    a fixed path), L{UNMATCHED} for a 404 or a path too odd to be one of ours.
    """
    if status == 404 or len(path) > 64 or not path.startswith("/"):
        return UNMATCHED
    return path


def request_done(metrics: Any, method: str, path: str, status: int, latency_s: float,
                 user_agent: str = "") -> None:
    """
    One log line, like an API route's, and one count in C{sapproxy_requests} (not for a successful probe or
    scrape of L{QUIET} paths).
    """
    if path in QUIET and status < 400:
        return
    endpoint = endpoint_label(path, status)
    if metrics is not None:
        metrics.request_finished(endpoint, "unknown", "", status, latency_s, None, False)
    shown = path if len(path) <= 200 else path[:200] + "..."
    line = f"{method} {shown} {status} - {latency_s * 1000:.1f}ms"
    log.info(line.replace("{", "{{").replace("}", "}}"), method=method, endpoint=endpoint, path=shown,
             status=status, latency_ms=round(latency_s * 1000, 1), user_agent=user_agent[:300])
