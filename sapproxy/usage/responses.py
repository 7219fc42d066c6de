"""
The responses the gateway produced on the Responses API, kept for C{previous_response_id}, C{GET} and C{DELETE}
of C{/v1/responses/{id}}: in the usage store's database (table C{responses}), each for C{ttl} seconds (OpenAI
keeps them 30 days), visible only to the key that made it.

A stored response keeps its conversation whole: the input items it was asked with (earlier turns expanded)
and its output items with every encrypted reasoning content, so a follow-up rebuilds the full history for any
family without asking the upstream for anything.

Writes go to the database on the store's thread pool; until a write is done the record is served from memory,
so a client that sends its follow-up the moment a stream ends (Codex does) finds it.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred, maybeDeferred, succeed
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
        self._deleted: set[str] = set()
        self._saves = 0

    def _defer(self, f: Any, *args: Any) -> Deferred[Any]:
        if self._threadpool is None:
            return maybeDeferred(f, *args)
        return deferToThreadPool(self._reactor, self._threadpool, f, *args)

    def save(self, key_id: str, model: str, deployment: str, items: list[dict[str, Any]],
             response: dict[str, Any]) -> Deferred[None]:
        now = self._reactor.seconds()
        record = StoredResponse(response["id"], key_id, model, deployment, now, now + self.ttl, items, response)
        self._pending[record.response_id] = record
        self._saves += 1
        purge = self._saves % 100 == 1

        def work(conn: Any) -> None:
            cur = conn.cursor()
            sql = self.database.sql
            if purge:
                cur.execute(sql("DELETE FROM responses WHERE expires < ?"), (now,))
            cur.execute(sql("DELETE FROM responses WHERE id = ?"), (record.response_id,))
            cur.execute(sql("INSERT INTO responses (id, key_id, model, deployment, created, expires, items, response) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                        (record.response_id, key_id, model, deployment, now, record.expires, _dumps(items),
                         _dumps(response)))

        def written(_: object) -> None:
            if self._pending.get(record.response_id) is record:
                del self._pending[record.response_id]

        def failed(failure: Any) -> None:
            # Kept in memory (until the process ends) so the conversation goes on; the database will not have it.
            log.failure("storing response {id} failed", failure, id=record.response_id)

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
