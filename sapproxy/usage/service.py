"""
The usage store as a Twisted service: started with the gateway, flushed on the way down, pruned daily.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from sapproxy.usage.store import UsageStore

log = Logger()

#: How often retention runs.
DAY = 86400.0


class UsageStoreService(Service):
    """
    Runs a L{UsageStore}: starts it (schema, thread pool, flush timer), deletes rows older than C{retention_days}
    once at start-up and then daily, and on C{stopService} writes every queued row before the reactor stops, so
    rows recorded up to a SIGTERM survive it (twistd waits on the Deferred returned).

    @param retention_days: keep this many days of rows; C{0} or less keeps everything.
    """

    name = "usage-store"

    def __init__(self, store: UsageStore, *, clock: IReactorTime, retention_days: int = 90) -> None:
        self.store = store
        self.retention_days = retention_days
        self._retention = LoopingCall(self._prune)
        self._retention.clock = clock
        self._started: Deferred[None] | None = None
        #: The latest retention pass (fires when it is done); for tests and shutdown ordering.
        self.last_prune: Deferred[Any] | None = None

    @property
    def started(self) -> Deferred[None] | None:
        """
        The store's start (open, migrate) once the service has started; fires when it is done.
        """
        return self._started

    @property
    def retention_running(self) -> bool:
        """
        Whether the daily retention pass is scheduled.
        """
        return bool(self._retention.running)

    def startService(self) -> None:
        super().startService()
        self._started = self.store.start()
        # The store logs its own trouble and keeps retrying; retention starts once it is ready.
        self._started.addErrback(lambda _: None)
        if self.retention_days > 0:
            self.store.when_ready().addCallback(self._start_retention)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._retention.running:
            self._retention.stop()
        return self.store.stop()

    def _start_retention(self, _: object) -> None:
        # Not returned: the LoopingCall's Deferred fires only when the loop stops.
        if self.running and not self._retention.running:
            self._retention.start(DAY, now=True)

    def _prune(self) -> Deferred[Any]:
        def done(count: int) -> None:
            if count:
                log.info("usage retention deleted {count} rows older than {days} days", count=count,
                         days=self.retention_days)

        # A failed prune is logged and tried again tomorrow; it must not stop the LoopingCall.
        self.last_prune = (
            self.store.delete_older_than(self.retention_days)
            .addCallback(done)
            .addErrback(lambda f: log.failure("usage retention failed", f))
        )
        return self.last_prune
