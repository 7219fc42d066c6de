"""
Client API keys: created and revoked by the admin CLI, checked by the gateway without touching the database.

Keys are stored only as their sha256 (a key is 240 random bits, so a fast unsalted hash is enough: there is
nothing to brute-force).  The gateway's L{KeyRing} keeps a snapshot of all usable keys, refreshed on a thread
pool every second (L{KEY_REFRESH_INTERVAL}), so a lookup is one hash and one dict access on the reactor thread, and a revoked
key stops working within one refresh interval, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any, Callable, Iterable

from attrs import field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from sapproxy.usage.db import Database, open_database

log = Logger()

KEY_PREFIX = "sk-sap-"
#: 30 random bytes make exactly 40 urlsafe base64 characters.
_KEY_BYTES = 30
#: Seconds between a gateway's reads of the key table: how soon a key made or revoked elsewhere (the CLI) is in
#: force.  One small SELECT on a thread pool.
KEY_REFRESH_INTERVAL = 1.0
#: How long after a change every running gateway has surely read it: a read already under way when the change
#: was committed, then the next one, with room for a slow database.
KEY_PROPAGATION_WAIT = 2 * KEY_REFRESH_INTERVAL + 0.25
_COLUMNS = ("name", "key_hash", "key_id", "created", "expires", "rpm", "tpm", "models", "revoked")


class KeyStoreError(Exception):
    """
    A key operation the user asked for cannot be done (duplicate name, unknown key); one line for the CLI.
    """


def hash_key(token: str) -> str:
    """
    The stored form of a key: the hex sha256 of its UTF-8 bytes.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def key_id_for(token: str) -> str:
    """
    A key's public identifier: the first 12 hex digits of its hash.  Safe for logs, metrics and the usage table;
    also usable for the configuration's static tokens.
    """
    return hash_key(token)[:12]


@frozen
class KeyRecord:
    """
    One client key, without its plaintext.

    @ivar expires: epoch seconds after which the key is refused, or C{None} for never.
    @ivar rpm: requests per minute allowed, or C{None} for no limit; C{tpm} likewise for tokens.
    @ivar models: the models this key may use, or C{None} for all of them.
    @ivar revoked: epoch seconds of revocation, or C{None}.
    """

    name: str
    key_id: str
    key_hash: str = field(repr=False)
    created: float
    expires: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] | None = None
    revoked: float | None = None

    def usable(self, now: float) -> bool:
        """
        Neither revoked nor expired at C{now}.
        """
        return self.revoked is None and (self.expires is None or now < self.expires)

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> KeyRecord:
        v = dict(zip(_COLUMNS, row))
        models = v["models"]
        return cls(
            name=v["name"],
            key_id=v["key_id"],
            key_hash=v["key_hash"],
            created=float(v["created"]),
            expires=None if v["expires"] is None else float(v["expires"]),
            rpm=v["rpm"],
            tpm=v["tpm"],
            models=None if models is None else tuple(json.loads(models)),
            revoked=None if v["revoked"] is None else float(v["revoked"]),
        )


def create_key(
    conn_url: str | Database,
    name: str,
    *,
    expires_in_s: float | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    models: Iterable[str] | None = None,
    now: Callable[[], float] = time.time,
) -> tuple[str, KeyRecord]:
    """
    Make a new key called C{name} and store its hash.  Returns the plaintext (shown once, never stored) and its
    record.

    @raise KeyStoreError: a key with that name already exists (revoked ones included: names identify usage rows).
    """
    if not name or not name.strip():
        raise KeyStoreError("a key needs a non-empty name")
    for label, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and limit <= 0:
            raise KeyStoreError(f"{label} must be a positive number")
    db = _db(conn_url)
    db.migrate()
    plaintext = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    digest = hash_key(plaintext)
    created = now()
    model_list = None if models is None else tuple(models)
    record = KeyRecord(
        name=name,
        key_id=digest[:12],
        key_hash=digest,
        created=created,
        expires=None if expires_in_s is None else created + expires_in_s,
        rpm=rpm,
        tpm=tpm,
        models=model_list,
    )

    def work(conn: Any) -> bool:
        cur = conn.cursor()
        cur.execute(db.sql("SELECT 1 FROM api_keys WHERE name = ?"), (name,))
        if cur.fetchone() is not None:
            return False
        cur.execute(
            db.sql(f"INSERT INTO api_keys ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"),
            (
                record.name, record.key_hash, record.key_id, record.created, record.expires, record.rpm,
                record.tpm, None if model_list is None else json.dumps(list(model_list)), None,
            ),
        )
        return True

    if not db.run(work):
        raise KeyStoreError(f"a key named {name!r} already exists")
    return plaintext, record


def list_keys(conn_url: str | Database) -> list[KeyRecord]:
    """
    Every key, revoked and expired ones included, oldest first.
    """
    db = _db(conn_url)
    db.migrate()
    return _select_all(db)


def revoke_key(conn_url: str | Database, name: str, *, now: Callable[[], float] = time.time) -> KeyRecord:
    """
    Revoke the key called C{name}; gateways stop accepting it within one L{KeyRing} refresh.

    @raise KeyStoreError: no such key, or it is already revoked.
    """
    db = _db(conn_url)
    db.migrate()
    when = now()

    def work(conn: Any) -> KeyRecord | str:
        cur = conn.cursor()
        cur.execute(db.sql(f"SELECT {', '.join(_COLUMNS)} FROM api_keys WHERE name = ?"), (name,))
        row = cur.fetchone()
        if row is None:
            return f"no key named {name!r}"
        record = KeyRecord.from_row(row)
        if record.revoked is not None:
            return f"the key {name!r} is already revoked"
        cur.execute(db.sql("UPDATE api_keys SET revoked = ? WHERE name = ?"), (when, name))
        return KeyRecord.from_row((*row[:-1], when))

    result = db.run(work)
    if isinstance(result, str):
        raise KeyStoreError(result)
    return result


def _select_all(db: Database) -> list[KeyRecord]:
    def work(conn: Any) -> list[KeyRecord]:
        cur = conn.cursor()
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM api_keys ORDER BY created, name")
        return [KeyRecord.from_row(r) for r in cur.fetchall()]

    return db.run(work)


def _db(conn_url: str | Database) -> Database:
    return open_database(conn_url) if isinstance(conn_url, str) else conn_url


class KeyRing:
    """
    The gateway's view of the keys: a snapshot C{key_hash -> KeyRecord} of the usable ones, refreshed from the
    database on a thread pool every C{refresh_interval} seconds.

    If a refresh fails the previous snapshot stays in force (logged once per outage): a database blip must not
    lock every client out.  The flip side: a key revoked during an outage keeps working until the database is
    back.
    """

    def __init__(
        self,
        database: Database,
        *,
        reactor: Any,
        threadpool: ThreadPool,
        clock: IReactorTime | None = None,
        refresh_interval: float = KEY_REFRESH_INTERVAL,
    ) -> None:
        self.database = database
        self._reactor = reactor
        self._pool = threadpool
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._keys: dict[str, KeyRecord] = {}
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._refresh_interval = refresh_interval
        self._failing = False
        self._refreshing = False
        self.loaded = False
        self._store_has_keys = False

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def holds_no_keys(self) -> bool:
        """
        The store has been read and has never held a key (revoked and expired ones count as held).

        Only then may a gateway without configured tokens run open: revoking the last key must not turn
        authentication off, and neither may a store not yet read (start-up) or unreadable.
        """
        return self.loaded and not self._store_has_keys

    def lookup(self, presented_token: str) -> KeyRecord | None:
        """
        The usable key matching C{presented_token}, or C{None} (unknown, revoked or expired).  Synchronous.
        """
        digest = hash_key(presented_token)
        record = self._keys.get(digest)
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            return None
        return record if record.usable(self._clock.seconds()) else None

    def refresh(self) -> Deferred[None]:
        """
        Reload the snapshot now (the first call also migrates the schema, which creates C{api_keys}).
        """
        def load() -> list[KeyRecord]:
            if not self.loaded:
                self.database.migrate()
            return _select_all(self.database)

        return deferToThreadPool(self._reactor, self._pool, load).addCallback(self.replace)

    def start(self) -> Deferred[None]:
        """
        Load the keys now and then every C{refresh_interval}; fires after the first load (successful or not).
        """
        first = self.refresh().addErrback(self._failed)
        first.addCallback(lambda _: None if self._loop.running else self._start_loop())
        return first

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _start_loop(self) -> None:
        self._loop.start(self._refresh_interval, now=False)

    def _tick(self) -> None:
        if self._refreshing:
            return  # the database is slow; do not queue refreshes behind it
        self._refreshing = True

        def done(result: object) -> object:
            self._refreshing = False
            return result

        self.refresh().addBoth(done).addErrback(self._failed)

    def replace(self, records: list[KeyRecord]) -> None:
        """
        Serve C{records} (a snapshot of the key store, as a reload reads it) from now on.
        """
        now = self._clock.seconds()
        self._keys = {r.key_hash: r for r in records if r.usable(now)}
        self._store_has_keys = self._store_has_keys or bool(records)
        self.loaded = True
        if self._failing:
            self._failing = False
            log.info("client keys reloaded again ({count} usable)", count=len(self._keys))

    def _failed(self, failure: Any) -> None:
        if not self._failing:
            self._failing = True
            log.failure("cannot reload client keys; keeping the last snapshot", failure)
