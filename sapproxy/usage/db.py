"""
One database connection, SQLite or PostgreSQL, used from any thread but by one at a time.

Everything here blocks: the gateway calls it on a thread pool (L{sapproxy.usage.store}), the CLI directly.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable, Literal, TypeVar

from sapproxy.usage.schema import MIGRATIONS

T = TypeVar("T")

Dialect = Literal["sqlite", "postgresql"]

#: Any number for PostgreSQL's advisory lock that serialises concurrent migrations (several gateways starting).
_MIGRATION_LOCK = 0x5A9_0001


class DatabaseError(Exception):
    """
    The usage database's URL is unusable, or the database refused us; one line, for the CLI to print.
    """


class Database:
    """
    A lazily opened connection behind a lock, reopened after a failure.

    One connection is enough: writes are batched, and a single writer is what SQLite wants anyway.  SQL is written
    with C{?} placeholders and translated for psycopg.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Dialect
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self._path = url[len("sqlite:///"):]
            if not self._path:
                raise DatabaseError(f"{url}: no database path (use sqlite:///PATH)")
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
        else:
            raise DatabaseError(f"{url}: unsupported usage store (use sqlite:///PATH or postgresql://...)")
        self._lock = threading.Lock()
        self._conn: Any = None

    def __repr__(self) -> str:
        return f"<Database {self.dialect}>"

    def sql(self, statement: str) -> str:
        """
        C{statement} with placeholders in this backend's style.
        """
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def run(self, work: Callable[[Any], T]) -> T:
        """
        Call C{work(connection)} in a transaction, holding the lock; commit if it returns, roll back (and drop a
        possibly broken connection) if it raises.
        """
        with self._lock:
            conn = self._connect()
            try:
                result = work(conn)
                conn.commit()
                return result
            except BaseException:
                self._discard()
                raise

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def migrate(self) -> int:
        """
        Create or upgrade the schema to the newest version; idempotent, and safe when several processes start at
        once.  Returns the version now in place.
        """
        migrations = MIGRATIONS[self.dialect]

        def work(conn: Any) -> int:
            cur = conn.cursor()
            if self.dialect == "sqlite":
                cur.execute("BEGIN IMMEDIATE")
            else:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            if row is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = 0
            else:
                version = int(row[0])
            if version > len(migrations):
                raise DatabaseError(
                    f"usage store schema version {version} is newer than this program's {len(migrations)}"
                )
            for statements in migrations[version:]:
                for statement in statements:
                    cur.execute(statement)
            cur.execute(self.sql("UPDATE schema_version SET version = ?"), (len(migrations),))
            return len(migrations)

        return self.run(work)

    def _connect(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self._open()
            except (sqlite3.Error, OSError) as e:
                raise DatabaseError(f"cannot open {self.url}: {e}") from e
        return self._conn

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            # Python's implicit (deferred) transactions around DML suit us; migrate() issues BEGIN IMMEDIATE itself.
            conn = sqlite3.connect(self._path, check_same_thread=False, timeout=10.0)
            if self._path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        import psycopg

        try:
            return psycopg.connect(**_pg_params(self.url))
        except psycopg.Error as e:
            raise DatabaseError(f"cannot connect to the usage store: {e}".splitlines()[0]) from e

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
            except Exception:
                pass
            # An in-memory SQLite database lives only as long as its connection: keep it (tests use it).
            if self.dialect == "sqlite" and self._path == ":memory:":
                self._conn = conn
                return
            try:
                conn.close()
            except Exception:
                pass


#: Connection settings the store's PostgreSQL connections get unless the URL sets them: a link that stops
#: answering is noticed within about a minute (keepalives; tcp_user_timeout for unacknowledged writes) and a
#: statement takes 30 s at most, so a hung store cannot hang the writer thread, nor shutdown, for ever.
_PG_DEFAULTS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
                "keepalives_count": "3", "tcp_user_timeout": "30000"}
_STATEMENT_TIMEOUT = "-c statement_timeout=30000"


def _pg_params(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = dict(conninfo_to_dict(url))
    for key, value in _PG_DEFAULTS.items():
        params.setdefault(key, value)
    options = str(params.get("options") or "")
    if "statement_timeout" not in options:
        params["options"] = (options + " " + _STATEMENT_TIMEOUT).strip()
    return params


def open_database(url: str) -> Database:
    """
    A L{Database} for C{url} (C{sqlite:///PATH}, C{sqlite:///:memory:} or C{postgresql://...}); nothing is opened
    until first use.
    """
    return Database(url)
