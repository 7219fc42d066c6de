"""
Giving memory back after a busy spell: a full garbage collection, and the C allocator trimmed, once the
gateway is idle.

Every request leaves a few reference cycles behind in the libraries it runs on (Klein's render keeps a
self-referencing error handler that closes over the request; werkzeug's matcher a recursive closure), which
only the cyclic collector frees.  A stream that lasts seconds outlives several young collections, so its
cycles land in the oldest generation, which CPython collects only after millions of allocations, and then
in one pause as long as that generation is large: 8,000 finished slow streams left about 390,000 objects
there, 0.65 s to free.  Collected on CPython's schedule, that pause falls in the middle of load and the
memory waits until then; collected here, it falls when no request is in flight, and what it freed is
reused by the next burst instead of growing the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()


def malloc_trim() -> Callable[[], None] | None:
    """
    glibc's C{malloc_trim(0)} (free heap pages handed back to the system), or L{None} where there is none.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> None:
        trim(0)

    return run


class IdleCollector(Service):
    """
    Every C{interval} seconds: if no request is in flight and at least C{min_finished} requests have finished
    since the last collection, collect every generation and trim the allocator.

    @param inflight: how many requests are in flight now.
    @param finished: how many requests have finished since the process started (a counter that only grows).
    """

    def __init__(self, clock: IReactorTime, inflight: Callable[[], int], finished: Callable[[], int], *,
                 interval: float = 2.0, min_finished: int = 1000, collect: Callable[[], Any] = gc.collect,
                 trim: Callable[[], None] | None = None) -> None:
        self._clock = clock
        self._inflight = inflight
        self._finished = finished
        self._interval = interval
        self._min_finished = min_finished
        self._collect = collect
        self._trim = trim
        self._seen = 0
        self.collections = 0
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()
        self._seen = self._finished()
        self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def check(self) -> bool:
        """
        Collect now if the gateway is idle after enough work; whether it did.
        """
        finished = self._finished()
        if self._inflight() or finished - self._seen < self._min_finished:
            return False
        self._seen = finished
        started = self._clock.seconds()
        freed = self._collect()
        if self._trim is not None:
            self._trim()
        self.collections += 1
        log.debug("idle: collected {freed} objects in {ms:.0f} ms", freed=freed,
                  ms=(self._clock.seconds() - started) * 1000)
        return True
