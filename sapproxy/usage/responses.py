"""
The responses the gateway produced on the Responses API, kept for C{previous_response_id}, C{GET} and C{DELETE}
of C{/v1/responses/{id}}: in the usage store's database (table C{responses}), each for C{ttl} seconds (OpenAI
keeps them 30 days), visible only to the key that made it.

A stored response keeps its conversation whole: the input items it was asked with (earlier turns expanded)
and its output items with every encrypted reasoning content, so a follow-up rebuilds the full history for any
family without asking the upstream for anything.

Writes go to the database in batches on the store's thread pool; until a write is done the record is served
from memory, so a client that sends its follow-up the moment a stream ends (Codex does) finds it.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from sapproxy.usage.db import Database

log = Logger()

#: OpenAI keeps stored responses for 30 days.
DEFAULT_TTL = 30 * 86400.0
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@frozen
class StoredResponse:
    """
    @ivar items: the conversation up to this response's request: earlier turns and this request's input.
    @ivar response: the whole response object (encrypted reasoning included).
    """

    response_id: str
    key_id: str
    model: str
    deployment: str
    created: float
    expires: float
    items: list[dict[str, Any]]
    response: dict[str, Any]

    def history(self) -> list[dict[str, Any]]:
        """The items a follow-up continues: this request's conversation, then this response's output."""
        return self.items + [dict(item) for item in self.response.get("output") or ()]


class ResponseStore:
    def __init__(self, database: Database, *, reactor: Any, threadpool: Any = None, ttl: float = DEFAULT_TTL) -> None:
        """
        @param threadpool: where database work runs (the usage store's); None runs it in the calling thread
            (tests with an in-memory database and a fake reactor).
        """
        self.database = database
        self._reactor = reactor
        self._threadpool = threadpool
        self.ttl = ttl
        #: Written to memory, not yet to the database.
        self._pending: dict[str, StoredResponse] = {}
        self._queue: list[StoredResponse] = []
        self._flush_call: Any = None
        self._deleted: set[str] = set()
        self._saves = 0
        #: Seconds between batched writes, and the most responses waiting for one.
        self.flush_delay = 0.5
        self.max_queued = 10_000

    def _defer(self, f: Any, *args: Any) -> Deferred[Any]:
        if self._threadpool is None:
            return maybeDeferred(f, *args)
        return deferToThreadPool(self._reactor, self._threadpool, f, *args)

    def save(self, key_id: str, model: str, deployment: str, items: list[dict[str, Any]],
             response: dict[str, Any]) -> None:
        """
        Keep C{response}: at once in memory, in the database with the next batch (one transaction every
        C{flush_delay} seconds: a stream's end costs the reactor a dict insert, not a write).
        """
        now = self._reactor.seconds()
        record = StoredResponse(response["id"], key_id, model, deployment, now, now + self.ttl, items, response)
        self._pending[record.response_id] = record
        self._queue.append(record)
        if len(self._queue) > self.max_queued:
            dropped = self._queue.pop(0)
            self._pending.pop(dropped.response_id, None)
            log.warn("response store backlog over {n}: dropped response {id}", n=self.max_queued, id=dropped.response_id)
        if self._flush_call is None:
            self._flush_call = self._reactor.callLater(self.flush_delay, self.flush)

    def flush(self) -> Deferred[None]:
        """Write every queued response now (one transaction); fires when written (or failed and re-queued)."""
        self._flush_call = None
        batch, self._queue = self._queue, []
        if not batch:
            return succeed(None)
        now = self._reactor.seconds()
        self._saves += 1
        purge = self._saves % 100 == 1

        def work(conn: Any) -> None:
            cur = conn.cursor()
            sql = self.database.sql
            if purge:
                cur.execute(sql("DELETE FROM responses WHERE expires < ?"), (now,))
            cur.executemany(sql("DELETE FROM responses WHERE id = ?"), [(r.response_id,) for r in batch])
            cur.executemany(sql("INSERT INTO responses (id, key_id, model, deployment, created, expires, items, "
                                "response) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                            [(r.response_id, r.key_id, r.model, r.deployment, r.created, r.expires, _dumps(r.items),
                              _dumps(r.response)) for r in batch])

        def written(_: object) -> None:
            for record in batch:
                if self._pending.get(record.response_id) is record:
                    del self._pending[record.response_id]

        def failed(failure: Any) -> None:
            if failure.check(CancelledError):
                # Given up on at a stop deadline (a hung database): nothing to retry after.
                log.error("{n} stored responses were not written: the database did not answer before shutdown",
                          n=len(batch))
                return
            # Kept in memory meanwhile, so conversations go on; tried again with the next batch.
            log.failure("storing {n} responses failed; kept for the next attempt", failure, n=len(batch))
            self._queue[:0] = [r for r in batch if self._pending.get(r.response_id) is r]
            if self._flush_call is None and self._queue:
                self._flush_call = self._reactor.callLater(self.flush_delay * 10, self.flush)

        return self._defer(self.database.run, work).addCallbacks(written, failed)

    def load(self, response_id: str, key_id: str) -> Deferred[StoredResponse | None]:
        """The stored response C{response_id} made with key C{key_id}, or None (unknown, expired, another key's)."""
        now = self._reactor.seconds()
        if response_id in self._deleted:
            return succeed(None)
        pending = self._pending.get(response_id)
        if pending is not None:
            return succeed(pending if pending.key_id == key_id and pending.expires > now else None)

        def work(conn: Any) -> StoredResponse | None:
            cur = conn.cursor()
            cur.execute(self.database.sql("SELECT id, key_id, model, deployment, created, expires, items, response "
                                          "FROM responses WHERE id = ?"), (response_id,))
            row = cur.fetchone()
            if row is None or row[1] != key_id or float(row[5]) <= now:
                return None
            return StoredResponse(row[0], row[1], row[2], row[3], float(row[4]), float(row[5]), json.loads(row[6]),
                                  json.loads(row[7]))

        return self._defer(self.database.run, work)

    def delete(self, response_id: str, key_id: str) -> Deferred[bool]:
        """Delete a stored response of C{key_id}'s; fires with whether there was one."""
        pending = self._pending.get(response_id)
        if pending is not None and pending.key_id == key_id:
            del self._pending[response_id]
            self._queue = [r for r in self._queue if r is not pending]
            self._deleted.add(response_id)  # a write still under way must not bring it back

        def work(conn: Any) -> bool:
            cur = conn.cursor()
            cur.execute(self.database.sql("DELETE FROM responses WHERE id = ? AND key_id = ?"), (response_id, key_id))
            return int(cur.rowcount) > 0

        def done(found: bool) -> bool:
            if pending is not None and pending.key_id == key_id:
                self._defer(self.database.run, work)  # after the pending write, whichever finishes first
                return True
            return found

        return self._defer(self.database.run, work).addCallback(done)


class ResponseStoreService(Service):
    """
    Writes the responses still queued when the gateway stops.  Added after the usage store's service, so it is
    stopped first: its batch reaches the store's one-thread pool before the usage store closes the database.
    The write is given C{stop_timeout} seconds: a hung database link must not hold SIGTERM for ever.
    """

    name = "response-store"

    def __init__(self, store: ResponseStore, stop_timeout: float = 10.0) -> None:
        self.store = store
        self.stop_timeout = stop_timeout

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self.store._flush_call is not None and self.store._flush_call.active():
            self.store._flush_call.cancel()
        flushed = self.store.flush()
        if flushed.called:
            return flushed
        timer = self.store._reactor.callLater(self.stop_timeout, flushed.cancel)
        return flushed.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
