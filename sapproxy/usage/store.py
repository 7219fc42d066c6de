"""
The gateway's side of the usage store: record rows without blocking, write them in batches on a thread pool.

A request's handler calls L{UsageStore.record}, which only appends to a list.  Every C{flush_interval} seconds, or
as soon as C{batch_size} rows are waiting, one C{executemany} writes them on the store's thread pool.  A failed
write (database down) puts the rows back and retries on the next tick; the backlog is capped at C{max_pending} so
a long outage costs the oldest rows (counted, reported through C{on_drop}) instead of the gateway's memory --
unless a L{Spool} is given: then the oldest rows go to local disk instead, as do rows still unwritten at stop,
and they are replayed into the store once it works again.

A store that is down at start-up is retried with backoff (1 s doubling to 60 s) for as long as the gateway runs.
A batch that fails for one row's data (a text PostgreSQL cannot hold) is written row by row: the bad row is
logged and dropped, the others are written, so one row never blocks the rest.  Stopping waits at most
C{stop_timeout} seconds for the store (a hung PostgreSQL link); what is left then goes to the spool.
"""

from __future__ import annotations

from typing import Any, Callable

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from sapproxy.usage.db import Database, open_database
from sapproxy.usage.record import COLUMNS, UsageRecord
from sapproxy.usage.spool import Spool, read_rows

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
        spool: Spool | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.database = database
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._owns_pool = threadpool is None
        # One writer thread by default: SQLite wants a single writer, and batches leave little to parallelise.
        self.threadpool = threadpool if threadpool is not None else _DaemonThreadPool(1, 1, name="sapproxy-usage")
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
        self.spool = spool
        self.stop_timeout = stop_timeout
        #: Rows handed to the writer thread and not yet settled (spooled at a stop deadline).
        self._inflight: list[UsageRecord] = []
        self._start_attempts = 0
        self._ready_waiters: list[Deferred[None]] = []
        self._retry_call: Any = None
        #: Rows dropped because they could not be stored even on their own (logged one by one).
        self.unstorable = 0

    @property
    def writing(self) -> bool:
        """
        Whether a batch is being written now.
        """
        return bool(self._lock.locked)

    @property
    def start_attempts(self) -> int:
        """
        How often the store has tried to open its database and run its migrations.
        """
        return self._start_attempts

    @property
    def start_retry_due(self) -> bool:
        """
        Whether a start failed and the next attempt is scheduled.
        """
        return self._retry_call is not None

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
        row = row.storable()
        if self._closed:
            self._spill([row], "the usage store is closed")
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
        Fires once the first attempt is over: with the schema in place, or with its error while the store keeps
        trying in the background (1 s, doubling to 60 s); rows recorded meanwhile wait in memory (and the spool).
        """
        if self._ready is None:
            if self._owns_pool:
                self.threadpool.start()
            self._ready = Deferred()
            self._attempt_start()
        return self._ready

    @property
    def ready(self) -> bool:
        """
        Whether the schema is in place and rows are being written.
        """
        return self._migrated

    def when_ready(self) -> Deferred[None]:
        """
        Fires once the schema is in place (at once if it is); never, if the store is stopped before.
        """
        d: Deferred[None] = Deferred()
        if self._migrated:
            d.callback(None)
        else:
            self._ready_waiters.append(d)
        return d

    def _attempt_start(self) -> None:
        self._retry_call = None
        if self._stopping:
            return
        self._start_attempts += 1

        def failed(failure: Failure) -> None:
            delay = min(2.0 ** (self._start_attempts - 1), 60.0)
            log.error("usage store {db} is unavailable ({error}); rows wait in {where}; retrying in {delay:.0f} s",
                      db=self.database, error=str(failure.value).splitlines()[0] if str(failure.value) else
                      type(failure.value).__name__, delay=delay,
                      where="the spool" if self.spool is not None else "memory")
            if not self._stopping:
                self._retry_call = self._clock.callLater(delay, self._attempt_start)
            if self._ready is not None and not self._ready.called:
                self._ready.errback(failure)

        def done(version: int) -> None:
            self._started(version)
            if self._ready is not None and not self._ready.called:
                self._ready.callback(None)

        self._defer(self.database.migrate).addCallbacks(done, failed)

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
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        log.info("usage store ready ({db}, schema version {version})", db=self.database, version=version)
        if not self._stopping:
            self._loop.start(self.flush_interval, now=False)
            if self.spool is not None and self.spool.waiting:
                self.flush().addErrback(lambda _: None)

    async def _stop(self) -> None:
        self._stopping = True
        if self._loop.running:
            self._loop.stop()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._closed = True
        # One deadline for the whole stop: a hung link must not hold SIGTERM until the service manager kills
        # us, whether the writer thread hangs in our batch or in someone else's work (the key ring's refresh,
        # a stored response) queued before it.
        deadline = self._clock.seconds() + self.stop_timeout
        hung = False
        if self._migrated and (self._pending or self._lock.locked):
            try:
                hung = not await self._within(self.flush(), deadline)
            except Exception:
                pass  # _flush_once logged it
        left = self._inflight + self._pending if hung else self._pending
        if left:
            self._spill(list(left), "they could not be written before shutdown")
            self._pending.clear()
            self._inflight = []
        if self.spool is not None:
            self.spool.close()
        if self._ready is not None and not hung:
            hung = not await self._within(self._defer(self.database.close), deadline)
        if hung:
            log.error("usage store did not answer within {t:g} s at stop", t=self.stop_timeout)
        elif self._ready is not None and self._owns_pool:
            self.threadpool.stop()  # joins the writer thread: only when it is not stuck

    async def _within(self, work: Deferred[Any], deadline: float) -> bool:
        """
        Wait for C{work} until C{deadline} (on our clock); cancel it then.  Whether it finished in time (its
        failure, if it failed in time, is raised).
        """
        timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), work.cancel)
        try:
            await work
        except CancelledError:
            return False
        finally:
            if timer.active():
                timer.cancel()
        return True

    def _tick(self) -> None:
        # Skip while a flush is running: during an outage one attempt can outlast many ticks (a PostgreSQL
        # connect timeout), and queueing a flush per tick would grow without bound.
        waiting = self.spool is not None and self.spool.waiting
        if (self._pending or waiting) and not self._lock.locked:
            self.flush().addErrback(lambda _: None)

    def _flush_once(self) -> Deferred[int]:
        replay = self.spool is not None and self.spool.waiting and self._migrated
        if (not self._pending and not replay) or not self._migrated:
            return succeed(0)
        rows, self._pending = self._pending, []
        self._inflight = rows

        def written(outcome: _Written) -> int:
            self._inflight = []
            for row, error in outcome.unstorable:
                self.unstorable += 1
                log.error("usage row {request_id} cannot be stored and is dropped ({error}); the others are "
                          "written", request_id=row.request_id, error=error)
                self._drop(1, "the row cannot be stored")
            if self._failing:
                self._failing = False
                log.info("usage store writes work again ({count} rows written)", count=outcome.count)
            if outcome.spool_file is not None and self.spool is not None:
                self.spool.replayed(outcome.spool_file)
            if outcome.replayed:
                log.info("usage spool replayed: {count} rows written to the store", count=outcome.replayed)
            return outcome.count

        def failed(failure: Failure) -> Failure:
            self._inflight = []
            self._pending[:0] = rows
            self._trim()
            if not self._failing and not failure.check(CancelledError):  # cancelled: stop says why
                self._failing = True
                log.error("usage store write failed ({error}); {count} rows kept for retry",
                          error=str(failure.value).splitlines()[0] if str(failure.value) else
                          type(failure.value).__name__, count=len(self._pending))
            return failure

        path = self.spool.take() if replay and self.spool is not None else None
        return self._defer(self._write, rows, path).addCallbacks(written, failed)

    def _write(self, rows: list[UsageRecord], path: Any = None) -> _Written:
        """
        On the writer thread: replay the spool file C{path} (when given), then write C{rows} in one
        transaction; if that fails for a row's data, row by row, keeping the rows that cannot be stored apart.

        @raise Exception: the store is unavailable; nothing of C{rows} was written.
        """
        statement = self.database.sql(_INSERT)
        bad: list[tuple[UsageRecord, str]] = []
        replayed = 0
        if path is not None:
            replayed, bad, unwritten = self._insert(statement, self._unreplayed(path))
            if unwritten:
                # Keep the file: its rows already written are recognised (and skipped) next time.
                raise _Unavailable(f"the store went away while the spool was replayed ({len(unwritten)} rows left)")
        count, more_bad, unwritten = self._insert(statement, rows)
        if unwritten:
            # The store went away half-way: the rest waits for the next flush, in front of newer rows.
            self._reactor.callFromThread(self._requeue, unwritten)
        return _Written(count, bad + more_bad, replayed, path)

    def _insert(self, statement: str, rows: list[UsageRecord]
                ) -> tuple[int, list[tuple[UsageRecord, str]], list[UsageRecord]]:
        """
        Insert C{rows} in one transaction; if that fails for a row's data, row by row.  Returns how many were
        written, the rows that cannot be stored (with why), and the rows not tried because the store went away.

        @raise Exception: the store is unavailable and nothing was written.
        """
        if not rows:
            return 0, [], []
        values = [row.as_tuple() for row in rows]

        def many(conn: Any) -> int:
            conn.cursor().executemany(statement, values)
            return len(values)

        try:
            return self.database.run(many), [], []
        except Exception as e:
            if not _is_data_error(e):
                raise
        count = 0
        bad: list[tuple[UsageRecord, str]] = []
        unwritten: list[UsageRecord] = []
        for row, value in zip(rows, values):
            if unwritten:
                unwritten.append(row)
                continue
            try:
                self.database.run(lambda conn: conn.cursor().execute(statement, value))
                count += 1
            except Exception as e:
                if _is_data_error(e):
                    bad.append((row, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
                elif count == 0 and not bad:
                    raise
                else:
                    unwritten.append(row)
        return count, bad, unwritten

    def _requeue(self, rows: list[UsageRecord]) -> None:
        self._pending[:0] = rows
        self._trim()

    def _unreplayed(self, path: Any) -> list[UsageRecord]:
        """
        The rows of a spool file not yet in the store (a replay cut short by a crash wrote some already).
        """
        rows = read_rows(path)
        if not rows:
            return []
        since, until = min(row.time for row in rows), max(row.time for row in rows)
        ids = {row.request_id for row in rows}

        def existing(conn: Any) -> set[str]:
            cur = conn.cursor()
            cur.execute(self.database.sql("SELECT request_id FROM usage_records WHERE time >= ? AND time <= ?"),
                        (since, until))
            return {r[0] for r in cur.fetchall() if r[0] in ids}

        present = self.database.run(existing)
        return [row.storable() for row in rows if row.request_id not in present]

    def _trim(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess > 0:
            oldest = self._pending[:excess]
            del self._pending[:excess]
            self._spill(oldest, "the backlog is over max_pending")

    def _spill(self, rows: list[UsageRecord], why: str) -> None:
        """
        Rows that cannot wait in memory: to the spool when there is one, else (and past its bound) dropped.
        """
        kept = self.spool.append(rows) if self.spool is not None else 0
        if kept:
            log.warn("{count} usage rows kept in the spool {path}: {why}", count=kept, path=str(self.spool.path)
                     if self.spool is not None else "", why=why)
        if len(rows) > kept:
            self._drop(len(rows) - kept, why + ("" if self.spool is None else " (and the spool is full)"))

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        log.warn("dropped {count} usage rows: {why}", count=count, why=why)
        if self.on_drop is not None:
            self.on_drop(count)

    def _defer(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self.threadpool, f, *args)


class _Unavailable(Exception):
    pass


@frozen
class _Written:
    count: int
    unstorable: list[tuple[UsageRecord, str]]
    replayed: int = 0
    spool_file: Any = None


def _is_data_error(e: BaseException) -> bool:
    """
    Whether C{e} is about the data of a row (it would fail again however often it is tried) rather than about
    the store being unavailable: Python's own conversion errors (a lone surrogate, an integer too large) and
    the DB-API's C{DataError} and C{IntegrityError} (PostgreSQL refusing a NUL), in sqlite3 and psycopg alike.
    """
    if isinstance(e, (ValueError, TypeError, OverflowError, UnicodeError)):
        return True
    return any(cls.__name__ in ("DataError", "IntegrityError") for cls in type(e).__mro__)


class _DaemonThreadPool(ThreadPool):
    """
    The writer's pool: its thread does not keep the process alive, so a store that hangs past the stop
    deadline (its rows spooled) cannot stop the gateway from exiting.
    """

    def threadFactory(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        import threading

        thread = threading.Thread(*args, **kwargs)
        thread.daemon = True
        return thread


def open_usage_store(
    url: str,
    *,
    reactor: Any,
    threadpool: ThreadPool | None = None,
    clock: IReactorTime | None = None,
    flush_interval: float = 1.0,
    batch_size: int = 500,
    max_pending: int = 100_000,
    spool: Spool | None = None,
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
        spool=spool,
    )
