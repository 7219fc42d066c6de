"""
Client keys: created, listed and revoked through the CLI's functions, seen by the gateway's L{KeyRing}, against
real SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool

from sapproxy.usage import open_database
from sapproxy.usage.keys import (
    KEY_PREFIX,
    KeyRing,
    KeyStoreError,
    create_key,
    hash_key,
    key_id_for,
    list_keys,
    revoke_key,
)

from test_ops_store import db_url  # noqa: F401  (the fixture: a fresh SQLite file or PostgreSQL schema)


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    tp = ThreadPool(1, 1, name="test-keys")
    tp.start()
    yield tp
    tp.stop()


def test_create_list_revoke(db_url: str) -> None:  # noqa: F811
    key, record = create_key(db_url, "team-a", expires_in_s=3600, rpm=60, tpm=10_000, models=["gpt-4o", "o3"])
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 40
    assert record.key_hash == hash_key(key) and record.key_id == key_id_for(key) == record.key_hash[:12]
    assert record.expires == pytest.approx(record.created + 3600)
    other, _ = create_key(db_url, "team-b")
    assert other != key

    listed = list_keys(db_url)
    assert [r.name for r in listed] == ["team-a", "team-b"]
    assert listed[0] == record  # models, limits and times round-trip
    assert listed[1].models is None and listed[1].rpm is None and listed[1].expires is None
    assert key not in repr(listed)

    revoked = revoke_key(db_url, "team-a")
    assert revoked.revoked is not None
    assert list_keys(db_url)[0].revoked == revoked.revoked


def test_key_errors(db_url: str) -> None:  # noqa: F811
    create_key(db_url, "dup")
    with pytest.raises(KeyStoreError, match="already exists"):
        create_key(db_url, "dup")
    with pytest.raises(KeyStoreError, match="no key named"):
        revoke_key(db_url, "nobody")
    revoke_key(db_url, "dup")
    with pytest.raises(KeyStoreError, match="already revoked"):
        revoke_key(db_url, "dup")
    with pytest.raises(KeyStoreError):
        create_key(db_url, "x", rpm=0)


def test_only_the_hash_is_stored(db_url: str) -> None:  # noqa: F811
    key, _ = create_key(db_url, "secret")
    db = open_database(db_url)
    dump = db.run(lambda c: (cur := c.cursor(), cur.execute("SELECT * FROM api_keys"), cur.fetchall())[2])
    assert key not in repr(dump)
    db.close()


@pytest_twisted.ensureDeferred
async def test_keyring_lookup_and_revoke_within_a_refresh(db_url: str, pool: ThreadPool) -> None:  # noqa: F811
    key, record = create_key(db_url, "team-a", rpm=5)
    clock = Clock()
    clock.advance(time.time())
    ring = KeyRing(open_database(db_url), reactor=reactor, threadpool=pool, clock=clock, refresh_interval=2.0)
    await ring.start()
    try:
        assert ring.lookup(key) == record
        assert ring.lookup(key + "x") is None
        assert ring.lookup("") is None
        revoke_key(db_url, "team-a")
        assert ring.lookup(key) == record  # until the next refresh
        await ring.refresh()
        assert ring.lookup(key) is None
        # A key created meanwhile appears on the next timed refresh.
        new, _ = create_key(db_url, "team-b")
        clock.advance(2.0)  # the LoopingCall starts a refresh on the pool
        await ring.refresh()  # and this one, queued behind it on the one thread, fires after it
        assert ring.lookup(new) is not None
    finally:
        ring.stop()
        ring.database.close()


@pytest_twisted.ensureDeferred
async def test_keyring_expiry(db_url: str, pool: ThreadPool) -> None:  # noqa: F811
    key, _ = create_key(db_url, "short", expires_in_s=30)
    clock = Clock()
    clock.advance(time.time())
    ring = KeyRing(open_database(db_url), reactor=reactor, threadpool=pool, clock=clock)
    await ring.start()
    try:
        assert ring.lookup(key) is not None
        clock.advance(31)  # expiry is checked at lookup, not only at refresh
        assert ring.lookup(key) is None
    finally:
        ring.stop()
        ring.database.close()


@pytest_twisted.ensureDeferred
async def test_keyring_keeps_snapshot_when_database_fails(tmp_path: Any, pool: ThreadPool) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    key, _ = create_key(url, "team-a")
    ring = KeyRing(open_database(url), reactor=reactor, threadpool=pool, clock=Clock())
    await ring.start()
    ring.database.run(lambda c: c.cursor().execute("ALTER TABLE api_keys RENAME TO gone"))
    with pytest.raises(Exception):
        await ring.refresh()
    assert ring.lookup(key) is not None
    ring.stop()
    ring.database.close()


def test_lookup_cost(tmp_path: Any) -> None:
    """
    The hot path is one sha256 and a dict access (measured: about a microsecond).
    """
    ring = KeyRing(open_database("sqlite:///:memory:"), reactor=Clock(), threadpool=None, clock=Clock())  # type: ignore[arg-type]
    ring.replace([])
    start = time.perf_counter()
    for _ in range(100_000):
        ring.lookup("sk-sap-0123456789012345678901234567890123456789")
    assert (time.perf_counter() - start) / 100_000 < 10e-6
