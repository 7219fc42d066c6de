"""
The in-process limiter: exact sliding windows in this process's memory, for a gateway that runs alone.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from sapproxy.ratelimit import ALLOW, WINDOW, Decision, IRateLimiter


@implementer(IRateLimiter)
class InProcessRateLimiter:
    """
    Per key, the times of the last minute's requests and the (time, tokens) pairs of its responses, on an
    injected clock.  Memory per key is bounded by its rpm.
    """

    def __init__(self, clock: IReactorTime, window: float = WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, _TokenWindow] = {}

    def check(self, key_id: str, rpm: int | None, tpm: int | None) -> Deferred[Decision]:
        return succeed(self.check_now(key_id, rpm, tpm))

    def check_now(self, key_id: str, rpm: int | None, tpm: int | None) -> Decision:
        """
        L{check}, synchronously (this limiter never waits for anything).
        """
        now = self._clock.seconds()
        horizon = now - self._window
        if tpm is not None:
            spent = self._tokens.get(key_id)
            if spent is not None:
                spent.prune(horizon)
                if spent.total >= tpm:
                    return Decision(False, spent.free_at(tpm) + self._window - now, "tpm")
        if rpm is None:
            return ALLOW
        times = self._requests.get(key_id)
        if times is None:
            times = self._requests[key_id] = deque()
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= rpm:
            # The request that frees a slot is the one rpm places from the end.
            return Decision(False, times[len(times) - rpm] + self._window - now, "rpm")
        times.append(now)
        return ALLOW

    def add_tokens(self, key_id: str, n: int) -> None:
        if n <= 0:
            return
        spent = self._tokens.get(key_id)
        if spent is None:
            spent = self._tokens[key_id] = _TokenWindow()
        now = self._clock.seconds()
        spent.prune(now - self._window)
        spent.add(now, n)

    def disconnect(self) -> Deferred[None]:
        """
        Nothing to release: the windows are plain memory (and stay, should the limiter be used again).
        """
        return succeed(None)


class _TokenWindow:
    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, when: float, n: int) -> None:
        self.entries.append((when, n))
        self.total += n

    def prune(self, horizon: float) -> None:
        while self.entries and self.entries[0][0] <= horizon:
            self.total -= self.entries.popleft()[1]

    def free_at(self, limit: int) -> float:
        """
        The time of the entry whose expiry brings the total below C{limit}.
        """
        total = self.total
        for when, n in self.entries:
            total -= n
            if total < limit:
                return when
        return self.entries[-1][0]  # unreachable while total >= limit
