"""
The usage store against real SQLite (a temporary file) and real PostgreSQL (a throw-away schema in C{test}).

Database work runs on a real thread pool, so these tests use the real reactor through pytest-twisted; timers
run on a L{task.Clock} so that flushes and retention happen exactly when a test says.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool

from conftest import usage_database
from sapproxy.usage import UsageRecord, UsageStoreService, open_database, open_usage_store, query_rows
from sapproxy.usage.db import Database
from sapproxy.usage.schema import SCHEMA_VERSION

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """
    A URL for an empty database: a fresh SQLite file, or a fresh PostgreSQL schema (dropped afterwards).
    """
    with usage_database(request.param, tmp_path) as url:
        yield url


def row(n: int = 0, **changes: Any) -> UsageRecord:
    base = UsageRecord(
        time=time.time(), request_id=f"req-{n}", key_id="abcdef012345", key_name="team-a", dialect="openai",
        endpoint="/v1/chat/completions", model_requested="gpt-4o", model_resolved="gpt-4o", subaccount="acct1",
        deployment="d123", stream=True, status=200, error_type=None, prompt_tokens=10 + n, completion_tokens=5,
        cached_tokens=2, tokens_estimated=False, latency_ms=123.5, ttfb_ms=40.25, attempts=1, failovers=0,
        client_hung_up=False, user_agent="pytest",
    )
    return attrs.evolve(base, **changes)


def tables(db: Database) -> set[str]:
    def work(conn: Any) -> set[str]:
        cur = conn.cursor()
        if db.dialect == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {r[0] for r in cur.fetchall()}

    return db.run(work)


def version(db: Database) -> int:
    return int(db.run(lambda conn: (c := conn.cursor(), c.execute("SELECT version FROM schema_version"),
                                    c.fetchone())[2][0]))


# --- schema ----------------------------------------------------------------------------------------------------


def test_migrate_from_empty_and_again(db_url: str) -> None:
    db = open_database(db_url)
    assert db.migrate() == SCHEMA_VERSION
    assert {"schema_version", "usage_records", "api_keys"} <= tables(db)
    assert version(db) == SCHEMA_VERSION
    if db.dialect == "sqlite":
        assert db.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    # Re-running (every start-up does) changes nothing and does not fail.
    assert db.migrate() == SCHEMA_VERSION
    assert open_database(db_url).migrate() == SCHEMA_VERSION
    assert db.run(lambda c: (cur := c.cursor(), cur.execute("SELECT COUNT(*) FROM schema_version"),
                             cur.fetchone())[2][0]) == 1
    db.close()


def test_migrate_from_an_older_version(db_url: str) -> None:
    """
    A database at version 1 (usage table only) gets the later migrations, and keeps its rows.
    """
    from sapproxy.usage.schema import MIGRATIONS

    db = open_database(db_url)

    def v1(conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        cur.execute("INSERT INTO schema_version (version) VALUES (1)")
        for statement in MIGRATIONS[db.dialect][0]:
            cur.execute(statement)
        cur.execute("INSERT INTO usage_records (time, request_id, key_id, key_name, dialect, endpoint, "
                    "model_requested, model_resolved, subaccount, deployment, stream, status, prompt_tokens, "
                    "completion_tokens, cached_tokens, tokens_estimated, latency_ms, attempts, failovers, "
                    "client_hung_up, user_agent) VALUES (1, 'old', 'k', 'n', 'openai', '/', 'm', 'm', 's', 'd', "
                    "FALSE, 200, 1, 1, 0, FALSE, 1.0, 1, 0, FALSE, 'ua')")

    db.run(v1)
    assert "api_keys" not in tables(db)
    assert db.migrate() == SCHEMA_VERSION
    assert "api_keys" in tables(db)
    assert [r.request_id for r in query_rows(db, 0)] == ["old"]
    db.close()


def test_unsupported_url() -> None:
    from sapproxy.usage.db import DatabaseError

    with pytest.raises(DatabaseError):
        open_database("mysql://x")


def test_memory_sqlite_roundtrip() -> None:
    db = open_database("sqlite:///:memory:")
    db.migrate()
    db.migrate()
    assert "usage_records" in tables(db)


# --- the batching store ----------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_rows_written_on_the_flush_interval(db_url: str) -> None:
    clock = Clock()
    store = open_usage_store(db_url, reactor=reactor, clock=clock, flush_interval=1.0, batch_size=1000)
    await store.start()
    try:
        rows = [row(i) for i in range(3)]
        for r in rows:
            store.record(r)
        assert store.pending == 3
        clock.advance(0.5)
        assert store.pending == 3  # not yet
        clock.advance(0.5)
        assert store.pending == 0  # the tick took them
        await store.flush()  # waits behind the tick's flush
        got = query_rows(open_database(db_url), 0)
        assert got == rows  # every field round-trips, booleans and None included
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_full_batch_flushes_at_once(db_url: str) -> None:
    clock = Clock()
    store = open_usage_store(db_url, reactor=reactor, clock=clock, batch_size=5)
    await store.start()
    try:
        for i in range(4):
            store.record(row(i))
        assert store.pending == 4
        store.record(row(4))
        assert store.pending == 0  # handed to the writer without waiting for the timer
        await store.flush()
        assert len(query_rows(open_database(db_url), 0)) == 5
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_stop_flushes_everything(db_url: str) -> None:
    store = open_usage_store(db_url, reactor=reactor, clock=Clock(), batch_size=10_000)
    await store.start()
    for i in range(250):
        store.record(row(i))
    await store.stop()
    assert store.pending == 0
    assert len(query_rows(open_database(db_url), 0)) == 250


@pytest_twisted.ensureDeferred
async def test_failed_flush_keeps_rows_and_caps_backlog(db_url: str) -> None:
    """
    While the table is unwritable, rows stay queued (the oldest dropped past max_pending, counted); once it is
    back, the next flush writes them.
    """
    drops: list[int] = []
    store = open_usage_store(db_url, reactor=reactor, clock=Clock(), batch_size=10_000, max_pending=4)
    store.on_drop = drops.append
    await store.start()
    db = open_database(db_url)
    try:
        db.run(lambda c: c.cursor().execute("ALTER TABLE usage_records RENAME TO usage_away"))
        for i in range(3):
            store.record(row(i))
        with pytest.raises(Exception):
            await store.flush()
        assert store.pending == 3
        store.record(row(3))
        store.record(row(4))
        assert store.pending == 4
        assert store.dropped == 1 and drops == [1]
        db.run(lambda c: c.cursor().execute("ALTER TABLE usage_away RENAME TO usage_records"))
        assert await store.flush() == 4
        assert [r.request_id for r in query_rows(db, 0)] == ["req-1", "req-2", "req-3", "req-4"]
    finally:
        await store.stop()
        db.close()


@pytest_twisted.ensureDeferred
async def test_retention_deletes_only_old_rows(db_url: str) -> None:
    clock = Clock()
    now = time.time()
    clock.advance(now)
    store = open_usage_store(db_url, reactor=reactor, clock=clock)
    await store.start()
    try:
        store.record(row(1, time=now - 40 * 86400))
        store.record(row(2, time=now - 31 * 86400))
        store.record(row(3, time=now - 29 * 86400))
        store.record(row(4, time=now))
        await store.flush()
        assert await store.delete_older_than(30) == 2
        assert [r.request_id for r in query_rows(open_database(db_url), 0)] == ["req-3", "req-4"]
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_service_runs_retention_and_flushes_on_stop(db_url: str) -> None:
    clock = Clock()
    now = time.time()
    clock.advance(now)
    db = open_database(db_url)
    db.migrate()
    seed = open_usage_store(db_url, reactor=reactor, clock=clock)
    await seed.start()
    seed.record(row(1, time=now - 10 * 86400))
    await seed.stop()

    pool = ThreadPool(1, 1, name="test-usage")
    pool.start()
    try:
        store = open_usage_store(db_url, reactor=reactor, threadpool=pool, clock=clock)
        service = UsageStoreService(store, clock=clock, retention_days=7)
        service.startService()
        assert service.started is not None
        await service.started  # schema ready; retention ran once at start
        assert service.last_prune is not None
        await service.last_prune
        assert query_rows(db, 0) == []
        store.record(row(2, time=now))
        store.record(row(3, time=now))
        await service.stopService()  # like SIGTERM under twistd
        assert [r.request_id for r in query_rows(db, 0)] == ["req-2", "req-3"]
        # A day later the next retention pass would run; the loop is stopped with the service.
        assert not service.retention_running
    finally:
        pool.stop()
        db.close()


@pytest_twisted.ensureDeferred
async def test_record_costs_little() -> None:
    """
    record() is a list append (measured, loosely: well under 10 microseconds per row).
    """
    store = open_usage_store("sqlite:///:memory:", reactor=reactor, clock=Clock(), batch_size=10**9,
                             max_pending=10**9)
    r = row()
    start = time.perf_counter()
    for _ in range(100_000):
        store.record(r)
    per_row = (time.perf_counter() - start) / 100_000
    assert per_row < 10e-6, per_row
