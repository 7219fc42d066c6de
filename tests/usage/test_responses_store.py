"""
The Responses API's stored responses: kept in memory at once, written in batches, per key, with a TTL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from sapproxy.usage.db import open_database
from sapproxy.usage.responses import ResponseStore
from test_ops_store import db_url  # noqa: F401  (the fixture: SQLite, and PostgreSQL where it runs)


def _result(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the deferred did not fire"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def _rows(db: Any) -> list[tuple[Any, ...]]:
    def work(conn: Any) -> list[tuple[Any, ...]]:
        cur = conn.cursor()
        cur.execute("SELECT id, key_id, model FROM responses ORDER BY id")
        return [tuple(r) for r in cur.fetchall()]

    return db.run(work)


def test_saved_at_once_written_in_a_batch_and_read_back(db_url: str) -> None:
    db = open_database(db_url)
    db.migrate()
    clock = Clock()
    store = ResponseStore(db, reactor=clock, ttl=100)
    items = [{"role": "user", "content": "hi"}]
    for n in range(3):
        store.save("key-a", "gpt-5", "d1", items, {"id": f"resp_{n}", "output": [{"type": "message", "n": n}]})
    # In memory at once (a follow-up the moment a stream ends finds it), not yet in the database.
    assert _result(store.load("resp_1", "key-a")).response["output"] == [{"type": "message", "n": 1}]
    assert _rows(db) == []
    clock.advance(store.flush_delay)
    assert _rows(db) == [("resp_0", "key-a", "gpt-5"), ("resp_1", "key-a", "gpt-5"), ("resp_2", "key-a", "gpt-5")]
    fresh = ResponseStore(db, reactor=clock, ttl=100)  # another process, or after a restart
    found = _result(fresh.load("resp_2", "key-a"))
    assert found.items == items and found.history() == items + [{"type": "message", "n": 2}]
    assert _result(fresh.load("resp_2", "key-b")) is None, "another key's response is not found"
    assert _result(fresh.delete("resp_2", "key-b")) is False
    assert _result(fresh.delete("resp_2", "key-a")) is True
    assert _result(fresh.load("resp_2", "key-a")) is None
    clock.advance(101)
    assert _result(fresh.load("resp_0", "key-a")) is None, "expired"


def test_a_response_deleted_before_its_write_stays_deleted(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'usage.db'}")
    db.migrate()
    clock = Clock()
    store = ResponseStore(db, reactor=clock)
    store.save("k", "m", "d", [], {"id": "resp_x", "output": []})
    assert _result(store.delete("resp_x", "k")) is True
    clock.advance(store.flush_delay)
    assert _rows(db) == [] and _result(store.load("resp_x", "k")) is None


def test_a_failed_write_keeps_the_responses_and_tries_again(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'usage.db'}")  # no schema yet: the write fails
    clock = Clock()
    store = ResponseStore(db, reactor=clock)
    store.save("k", "m", "d", [], {"id": "resp_y", "output": []})
    clock.advance(store.flush_delay)
    assert _result(store.load("resp_y", "k")) is not None
    db.migrate()
    clock.advance(store.flush_delay * 10)
    assert _rows(db) == [("resp_y", "k", "m")]
