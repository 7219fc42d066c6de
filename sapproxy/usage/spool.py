"""
Usage rows that could not be written to the store yet, kept on local disk so that neither an outage of the
store nor a restart during one loses them.

The spool is a file of JSON lines, one row each, bounded in bytes (past the bound new rows are dropped,
counted).  Rows are appended from the reactor thread (a buffered append of a few hundred bytes); a replay
moves the file aside (C{.replaying}) so that appends go on into a fresh one, and the store's writer thread
reads it, writes its rows in one transaction and deletes it.  A replay that fails leaves the file to be
replayed next time; one that is cut short by a crash is replayed again, and rows already in the store (same
request id) are skipped then.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from twisted.logger import Logger

from sapproxy.usage.record import COLUMNS, UsageRecord

log = Logger()

#: The spool's default bound.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class Spool:
    """
    @ivar path: the file rows are appended to; C{path + ".replaying"} while a replay reads it.
    @ivar max_bytes: the most both files together may hold.
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.replaying = self.path.with_name(self.path.name + ".replaying")
        self.max_bytes = max_bytes
        self._out: IO[str] | None = None
        self._size = _size(self.path) + _size(self.replaying)

    @property
    def size(self) -> int:
        """
        Bytes waiting in the spool (both files).
        """
        return self._size

    @property
    def waiting(self) -> bool:
        """
        Whether any row waits for a replay.
        """
        return self._size > 0

    def append(self, rows: list[UsageRecord]) -> int:
        """
        Append C{rows}; returns how many were kept (the rest would pass L{max_bytes}, or the disk refused).
        """
        kept = 0
        try:
            out = self._open()
            for row in rows:
                line = json.dumps(list(row.as_tuple()), separators=(",", ":")) + "\n"
                if self._size + len(line) > self.max_bytes:
                    break
                out.write(line)
                self._size += len(line)
                kept += 1
            out.flush()
        except OSError as e:
            log.error("usage spool {path}: cannot write ({error}); rows not kept", path=str(self.path), error=e)
            self.close()
        return kept

    def take(self) -> Path | None:
        """
        The file a replay should read: one left by an earlier replay, else the current file moved aside.
        L{None} when nothing waits.
        """
        if self.replaying.exists():
            return self.replaying
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        self.close()
        os.replace(self.path, self.replaying)
        return self.replaying

    def close(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None

    def replayed(self, path: Path) -> None:
        """
        The rows of C{path} are in the store: forget them.
        """
        size = _size(path)
        path.unlink(missing_ok=True)
        self._size = max(self._size - size, 0)

    def _open(self) -> IO[str]:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self.path, "a", encoding="utf-8")
        return self._out


def read_rows(path: Path) -> list[UsageRecord]:
    """
    The rows in a spool file; a line that cannot be read (a write cut short by a crash) is skipped and logged.
    """
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                values: Any = json.loads(line)
                if not isinstance(values, list) or len(values) != len(COLUMNS):
                    raise ValueError("not a row")
                rows.append(UsageRecord.from_row(tuple(values)))
            except (ValueError, TypeError):
                log.warn("usage spool {path}: line {number} is not a row; skipped", path=str(path), number=number)
    return rows


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
