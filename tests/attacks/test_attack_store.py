"""
Attack: the usage store (issue #15, items 1, 2 and 6).

 - Rows whose text no backend can hold (a lone surrogate; a NUL, which PostgreSQL refuses) once stopped all
   recording for the life of the process.  Now every row's text is made storable on the way in, and a row
   that still fails is written apart from the others, logged and dropped: 0 good rows lost.
 - A store unavailable at start-up never recovered.  Now start-up retries with backoff, rows wait in memory
   and in an on-disk spool, and are written when the store returns, also after a restart: 500 of 500.
 - A store that hangs held shutdown for ever.  Now stop has a deadline, after which the rows go to the spool.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import usage_database  # noqa: E402
from sapproxy.usage import UsageRecord, open_database, open_usage_store, query_rows  # noqa: E402
from sapproxy.usage.record import COLUMNS  # noqa: E402
from sapproxy.usage.spool import Spool, read_rows  # noqa: E402

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    with usage_database(request.param, tmp_path) as url:
        yield url


def row(n: int, **changes: Any) -> UsageRecord:
    base = UsageRecord(
        time=time.time(), request_id=f"req-{n}", key_id="abcdef012345", key_name="team-a", dialect="openai",
        endpoint="/v1/chat/completions", model_requested="gpt-4o", model_resolved="gpt-4o", subaccount="acct1",
        deployment="d123", stream=False, status=200, error_type=None, prompt_tokens=10, completion_tokens=5,
        cached_tokens=0, tokens_estimated=False, latency_ms=12.5, ttfb_ms=None, attempts=1, failovers=0,
        client_hung_up=False, user_agent="attack",
    )
    return attrs.evolve(base, **changes)


async def settle(store: Any) -> None:
    while store.pending or store.writing:
        await store.flush()


@pytest_twisted.ensureDeferred
async def test_hostile_text_never_blocks_recording(db_url: str) -> None:
    """
    The red team's sequence: one row with a lone surrogate or a NUL in its model name, then 101 normal rows.
    """
    store = open_usage_store(db_url, reactor=reactor, clock=Clock(), batch_size=10_000)
    await store.start()
    try:
        store.record(row(0, model_requested="\ud800", user_agent="ua\x00"))
        store.record(row(1, model_requested="gpt\x00x", key_name="k\ud83d"))
        for i in range(2, 103):
            store.record(row(i))
        await settle(store)
        got = query_rows(open_database(db_url), 0)
        assert len(got) == 103 and store.dropped == 0
        assert got[0].model_requested == "\\ud800" and got[0].user_agent == "ua\\x00"
        assert got[1].model_requested == "gpt\\x00x"
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_an_unstorable_row_is_isolated_and_the_batch_written(db_url: str) -> None:
    """
    A row that fails on its own (an integer no column holds) is logged and dropped; its batch is written.
    """
    store = open_usage_store(db_url, reactor=reactor, clock=Clock(), batch_size=10_000)
    await store.start()
    try:
        for i in range(50):
            store.record(row(i))
        store.record(row(50, prompt_tokens=2 ** 80))
        for i in range(51, 101):
            store.record(row(i))
        await settle(store)
        got = query_rows(open_database(db_url), 0)
        assert len(got) == 100 and "req-50" not in {r.request_id for r in got}
        assert store.unstorable == 1 and store.dropped == 1
        # And recording goes on.
        store.record(row(200))
        await settle(store)
        assert len(query_rows(open_database(db_url), 0)) == 101
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_store_down_at_start_recovers_with_every_row(tmp_path: Path) -> None:
    """
    SQLite in a directory that does not exist yet: start-up fails and is retried with backoff; 500 rows are
    served meanwhile; once the directory appears, the retry migrates and writes all 500.
    """
    clock = Clock()
    where = tmp_path / "later"
    url = f"sqlite:///{where / 'usage.db'}"
    store = open_usage_store(url, reactor=reactor, clock=clock, spool=Spool(tmp_path / "spool.jsonl"))
    with pytest.raises(Exception):
        await store.start()
    assert not store.ready
    for i in range(500):
        store.record(row(i))
    clock.advance(1.0)  # first retry, still down
    await wait_until(lambda: store.start_attempts >= 2 and store.start_retry_due)
    assert not store.ready
    where.mkdir()
    clock.advance(2.0)  # second retry: up
    await wait_until(lambda: store.ready)
    await settle(store)
    await store.stop()
    assert len(query_rows(open_database(url), 0)) == 500 and store.dropped == 0


@pytest_twisted.ensureDeferred
async def test_store_down_for_the_whole_run_spools_and_a_restart_replays(tmp_path: Path) -> None:
    """
    The store never comes up before SIGTERM: the rows go to the on-disk spool, not away; the next start, with
    the store back, writes all 500, once (a replay cut short and repeated does not write them twice).
    """
    where = tmp_path / "later"
    url = f"sqlite:///{where / 'usage.db'}"
    spool_path = tmp_path / "spool.jsonl"
    store = open_usage_store(url, reactor=reactor, clock=Clock(), spool=Spool(spool_path), max_pending=200)
    with pytest.raises(Exception):
        await store.start()
    for i in range(500):
        store.record(row(i))
    assert store.pending == 200  # the 300 oldest went to disk already
    await store.stop()
    assert store.dropped == 0 and len(read_rows(spool_path)) == 500

    where.mkdir()
    # A replay that crashed after writing its rows but before deleting its file leaves the rows twice.
    spool = Spool(spool_path)
    db = open_database(url)
    db.migrate()
    first = read_rows(spool_path)[:100]
    db.run(lambda c: c.cursor().executemany(
        f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [r.as_tuple() for r in first]))
    again = open_usage_store(url, reactor=reactor, clock=Clock(), spool=spool)
    await again.start()
    await wait_until(lambda: not spool.waiting)
    await again.stop()
    got = query_rows(open_database(url), 0)
    assert sorted(r.request_id for r in got) == sorted(f"req-{i}" for i in range(500))
    assert not spool_path.exists() and not spool.replaying.exists()


@pytest_twisted.ensureDeferred
async def test_stop_has_a_deadline_when_the_store_hangs(tmp_path: Path) -> None:
    """
    A store whose link hangs mid-write: stop gives up after stop_timeout and spools every row (the batch in
    flight included) instead of waiting for ever.
    """
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    spool_path = tmp_path / "spool.jsonl"
    store = open_usage_store(url, reactor=reactor, clock=clock, spool=Spool(spool_path))
    store.stop_timeout = 5.0
    await store.start()
    release = threading.Event()
    real_run = store.database.run
    store.database.run = lambda work: (release.wait(30), real_run(work))[1]  # type: ignore[method-assign]
    try:
        for i in range(40):
            store.record(row(i))
        store.flush()  # hangs in the writer thread
        for i in range(40, 60):
            store.record(row(i))
        stopping = store.stop()
        assert not stopping.called
        clock.advance(5.0)
        await wait_until(lambda: stopping.called)
        ids = {r.request_id for r in read_rows(spool_path)}
        assert ids == {f"req-{i}" for i in range(60)}
    finally:
        release.set()


@pytest_twisted.ensureDeferred
async def test_stop_has_a_deadline_when_other_work_hangs_the_writer(tmp_path: Path) -> None:
    """
    Nothing of ours to write, but the writer thread hangs in other work on the same link (the key ring's
    refresh, every second): closing the connection, queued behind it, once held stop for ever.
    """
    from twisted.internet.threads import deferToThreadPool

    clock = Clock()
    store = open_usage_store(f"sqlite:///{tmp_path / 'usage.db'}", reactor=reactor, clock=clock)
    store.stop_timeout = 5.0
    await store.start()
    release = threading.Event()
    try:
        deferToThreadPool(reactor, store.threadpool, release.wait, 30)
        stopping = store.stop()
        await wait_until(lambda: clock.getDelayedCalls() != [])
        assert not stopping.called
        clock.advance(5.0)
        await wait_until(lambda: stopping.called)
    finally:
        release.set()


async def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        d: Deferred[None] = Deferred()
        reactor.callLater(0.01, d.callback, None)
        await d


@pytest_twisted.ensureDeferred
async def test_an_unstorable_row_in_the_spool_does_not_block_its_replay(db_url: str, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([row(i) for i in range(5)] + [row(5, prompt_tokens=2 ** 80)] + [row(i) for i in range(6, 10)])
    spool.close()
    store = open_usage_store(db_url, reactor=reactor, clock=Clock(), spool=Spool(tmp_path / "spool.jsonl"))
    await store.start()
    try:
        await wait_until(lambda: store.spool is not None and not store.spool.waiting)
        got = query_rows(open_database(db_url), 0)
        assert sorted(r.request_id for r in got) == sorted(f"req-{i}" for i in range(10) if i != 5)
        assert store.unstorable == 1
        store.record(row(20))
        await settle(store)
        assert len(query_rows(open_database(db_url), 0)) == 10
    finally:
        await store.stop()
