"""
TokenCache: one fetch in flight per subaccount, expiry with a margin, refresh ahead, failures not cached.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from sapproxy.config import ServiceKey
from sapproxy.upstreams.sap_aicore import TokenCache, TokenFetchError, TokenGrant

KEY = ServiceKey(clientid="c", clientsecret="s", url="https://auth.example")


class FakeXsuaa:
    def __init__(self) -> None:
        self.pending: list[Deferred[TokenGrant]] = []

    def fetch(self, key: ServiceKey) -> Deferred[TokenGrant]:
        d: Deferred[TokenGrant] = Deferred()
        self.pending.append(d)
        return d


def results(ds: list[Deferred[str]]) -> list[object]:
    out: list[object] = []
    for d in ds:
        d.addBoth(out.append)
    return out


def test_500_concurrent_cold_requests_make_one_fetch() -> None:
    xsuaa, clock = FakeXsuaa(), Clock()
    cache = TokenCache("a", KEY, xsuaa.fetch, clock)
    got = results([cache.get() for _ in range(500)])
    assert len(xsuaa.pending) == 1 and got == []
    xsuaa.pending[0].callback(TokenGrant("tok-1", 3600))
    assert got == ["tok-1"] * 500
    # Cached now: no second fetch.
    assert results([cache.get()]) == ["tok-1"] and len(xsuaa.pending) == 1


def test_expiry_margin_and_refresh_ahead() -> None:
    xsuaa, clock = FakeXsuaa(), Clock()
    cache = TokenCache("a", KEY, xsuaa.fetch, clock, margin=300, refresh_ahead=300)
    cache.get()
    xsuaa.pending[0].callback(TokenGrant("tok-1", 3600))
    # Refresh starts ahead of the margin (3600 - 300 - 300 = 3000 s) while the old token still serves.
    clock.advance(3000)
    assert len(xsuaa.pending) == 2
    assert results([cache.get()]) == ["tok-1"]
    xsuaa.pending[1].callback(TokenGrant("tok-2", 3600))
    assert results([cache.get()]) == ["tok-2"]


def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    xsuaa, clock = FakeXsuaa(), Clock()
    cache = TokenCache("a", KEY, xsuaa.fetch, clock)
    got = results([cache.get(), cache.get()])
    xsuaa.pending[0].errback(TokenFetchError("token endpoint answered HTTP 503"))
    assert [type(f.value) for f in got] == [TokenFetchError, TokenFetchError]  # type: ignore[attr-defined]
    assert cache.state()["last_error"] == "token endpoint answered HTTP 503"
    cache.get()
    assert len(xsuaa.pending) == 1  # backing off: the failure is repeated without a fetch
    clock.advance(2)
    cache.get()
    assert len(xsuaa.pending) == 2  # tried again after the backoff, not a cached failure
    xsuaa.pending[1].callback(TokenGrant("tok", 60))
    assert cache.state()["token"] == "valid" and cache.state()["last_error"] is None


def test_invalidate_forgets_only_the_refused_token() -> None:
    xsuaa, clock = FakeXsuaa(), Clock()
    cache = TokenCache("a", KEY, xsuaa.fetch, clock)
    cache.get()
    xsuaa.pending[0].callback(TokenGrant("tok-1", 3600))
    cache.invalidate("some-older-token")
    assert results([cache.get()]) == ["tok-1"]
    cache.invalidate("tok-1")
    cache.get()
    assert len(xsuaa.pending) == 2


def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    xsuaa, clock = FakeXsuaa(), Clock()
    cache = TokenCache("a", KEY, xsuaa.fetch, clock)
    first, second = cache.get(), cache.get()
    first.addErrback(lambda _: None)
    first.cancel()
    xsuaa.pending[0].callback(TokenGrant("tok", 3600))
    assert results([second]) == ["tok"]
