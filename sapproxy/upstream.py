"""
The one HTTP client every upstream call goes through.

One persistent L{HTTPConnectionPool} shared by all requests, sized for thousands of concurrent streams
(C{maxPersistentPerHost} caps the idle connections kept, not concurrency: too low, and every extra
connection is closed when its stream ends).  No redirects (an inference call that redirects is a
misconfiguration to see, not to follow).
"""

from __future__ import annotations

from typing import Any

from treq.client import HTTPClient
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory


class _QuietFactory(_HTTP11ClientFactory):
    # One log line per upstream connection is noise at thousands of streams.
    noisy = False


def make_http_client(reactor: Any, *, pool_size: int, connect_timeout: float,
                     idle_connection_timeout: int = 100) -> tuple[HTTPClient, HTTPConnectionPool]:
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = pool_size
    # Below the usual upstream keep-alive, so we drop a cached connection before the server does.
    pool.cachedConnectionTimeout = int(idle_connection_timeout)
    pool.retryAutomatically = False
    pool._factory = _QuietFactory
    agent = Agent(reactor, pool=pool, connectTimeout=connect_timeout)
    return HTTPClient(agent), pool


def upstream_headers(token: str, resource_group: str, zone: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "AI-Resource-Group": resource_group,
        "Content-Type": "application/json",
    }
    if zone:
        headers["AI-Tenant-Id"] = zone
    if extra:
        headers.update(extra)
    return headers


def sleep(clock: IReactorTime, seconds: float) -> Any:
    from twisted.internet.task import deferLater

    return deferLater(clock, seconds, lambda: None)
