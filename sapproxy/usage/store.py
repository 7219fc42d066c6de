"""
The gateway's side of the usage store: record rows without blocking, write them in batches on a thread pool.

A request's handler calls L{UsageStore.record}, which only appends to a list.  Every C{flush_interval} seconds, or
as soon as C{batch_size} rows are waiting, one C{executemany} writes them on the store's thread pool.  A failed
write (database down) puts the rows back and retries on the next tick; the backlog is capped at C{max_pending} so
a long outage costs the oldest rows (counted, reported through C{on_drop}) instead of the gateway's memory.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from sapproxy.usage.db import Database, open_database
from sapproxy.usage.record import COLUMNS, UsageRecord

log = Logger()

_INSERT = f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class UsageStore:
    """
    Batches L{UsageRecord}s in memory and writes them to a L{Database} on a thread pool.

    @ivar dropped: rows given up on (backlog over C{max_pending}, or unwritable at L{stop}).
    @ivar on_drop: called with the number of rows each time some are dropped (the gateway wires a metric to it).
    """

    def __init__(
        self,
        database: Database,
        *,
        reactor: Any,
        threadpool: ThreadPool | None = None,
        clock: IReactorTime | None = None,
        flush_interval: float = 1.0,
        batch_size: int = 500,
        max_pending: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.database = database
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._owns_pool = threadpool is None
        # One writer thread by default: SQLite wants a single writer, and batches leave little to parallelise.
        self.threadpool = threadpool if threadpool is not None else ThreadPool(1, 1, name="sapproxy-usage")
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.on_drop = on_drop
        self.dropped = 0
        self._pending: list[UsageRecord] = []
        self._lock = DeferredLock()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._ready: Deferred[None] | None = None
        self._migrated = False
        self._failing = False
        self._closed = False
        self._stopping = False

    @property
    def pending(self) -> int:
        """
        Rows recorded but not yet written.
        """
        return len(self._pending)

    def record(self, row: UsageRecord) -> None:
        """
        Queue C{row} for writing; never blocks, never raises for database trouble.
        """
        if self._closed:
            self._drop(1, "the usage store is closed")
            return
        self._pending.append(row)
        if len(self._pending) > self.max_pending:
            self._trim()
        elif len(self._pending) >= self.batch_size and self._migrated and not self._lock.locked:
            self.flush().addErrback(lambda _: None)

    def flush(self) -> Deferred[int]:
        """
        Write every queued row now.  Fires with the number written; on a database error the rows go back in the
        queue (to be retried on the next tick) and the error is passed on.
        """
        return self._lock.run(self._flush_once)

    def start(self) -> Deferred[None]:
        """
        Start the thread pool (when the store made its own), create or migrate the schema, start the flush timer.
        Fires once the schema is in place; rows recorded meanwhile wait in memory.
        """
        if self._ready is None:
            if self._owns_pool:
                self.threadpool.start()
            self._ready = self._defer(self.database.migrate).addCallback(self._started)
        return self._ready

    def stop(self) -> Deferred[None]:
        """
        Stop the timer, write everything still queued, close the connection (and stop our own thread pool).
        """
        return Deferred.fromCoroutine(self._stop())

    def delete_older_than(self, days: float) -> Deferred[int]:
        """
        Delete rows older than C{days} days; fires with how many were deleted.
        """
        cutoff = self._clock.seconds() - days * 86400.0

        def work(conn: Any) -> int:
            cur = conn.cursor()
            cur.execute(self.database.sql("DELETE FROM usage_records WHERE time < ?"), (cutoff,))
            return int(cur.rowcount)

        return self._defer(self.database.run, work)

    def _started(self, version: int) -> None:
        self._migrated = True
        log.info("usage store ready ({db}, schema version {version})", db=self.database, version=version)
        if not self._stopping:
            self._loop.start(self.flush_interval, now=False)

    async def _stop(self) -> None:
        self._stopping = True
        if self._loop.running:
            self._loop.stop()
        if self._ready is not None:
            try:
                await self._ready
            except Exception:
                log.failure("usage store never became ready")
        self._closed = True
        if self._migrated and self._pending:
            try:
                await self.flush()
            except Exception:
                pass  # _flush_once logged it
        if self._pending:
            self._drop(len(self._pending), "they could not be written before shutdown")
            self._pending.clear()
        if self._ready is not None:
            await self._defer(self.database.close)
            if self._owns_pool:
                self.threadpool.stop()

    def _tick(self) -> None:
        # Skip while a flush is running: during an outage one attempt can outlast many ticks (a PostgreSQL
        # connect timeout), and queueing a flush per tick would grow without bound.
        if self._pending and not self._lock.locked:
            self.flush().addErrback(lambda _: None)

    def _flush_once(self) -> Deferred[int]:
        if not self._pending or not self._migrated:
            return succeed(0)
        rows, self._pending = self._pending, []

        def written(count: int) -> int:
            if self._failing:
                self._failing = False
                log.info("usage store writes work again ({count} rows written)", count=count)
            return count

        def failed(failure: Failure) -> Failure:
            self._pending[:0] = rows
            self._trim()
            if not self._failing:
                self._failing = True
                log.failure(
                    "usage store write failed; {count} rows kept for retry", failure, count=len(self._pending)
                )
            return failure

        return self._defer(self._write, rows).addCallbacks(written, failed)

    def _write(self, rows: list[UsageRecord]) -> int:
        statement = self.database.sql(_INSERT)
        values = [row.as_tuple() for row in rows]

        def work(conn: Any) -> int:
            conn.cursor().executemany(statement, values)
            return len(values)

        return self.database.run(work)

    def _trim(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess > 0:
            del self._pending[:excess]
            self._drop(excess, "the backlog is over max_pending")

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        log.warn("dropped {count} usage rows: {why}", count=count, why=why)
        if self.on_drop is not None:
            self.on_drop(count)

    def _defer(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self.threadpool, f, *args)


def open_usage_store(
    url: str,
    *,
    reactor: Any,
    threadpool: ThreadPool | None = None,
    clock: IReactorTime | None = None,
    flush_interval: float = 1.0,
    batch_size: int = 500,
    max_pending: int = 100_000,
) -> UsageStore:
    """
    A L{UsageStore} for C{url}: C{sqlite:///PATH} (relative paths as given; WAL mode), C{sqlite:///:memory:}, or
    C{postgresql://...}.  Call L{UsageStore.start} (or run it under L{sapproxy.usage.UsageStoreService}).

    @param threadpool: run database work here; by default the store makes, starts and stops its own one-thread
        pool, kept apart from the reactor's pool (which resolves names for outgoing requests).
    @param clock: the flush timer's clock; the reactor by default.
    """
    return UsageStore(
        open_database(url),
        reactor=reactor,
        threadpool=threadpool,
        clock=clock,
        flush_interval=flush_interval,
        batch_size=batch_size,
        max_pending=max_pending,
    )
