"""
One row of usage: what a single client request cost and how it went.
"""

from __future__ import annotations

import re
from operator import attrgetter
from typing import Any

from attrs import evolve, fields, frozen

from sapproxy.edge import printable


@frozen
class UsageRecord:
    """
    The facts about one client request, written once when it ends.

    @ivar key_id: a hash prefix of the client's key (L{sapproxy.usage.keys.key_id_for}); never the key itself, so
        the usage table can be shared with people who must not see keys.
    @ivar tokens_estimated: the upstream reported no usage (e.g. a stream cut short) and the counts are ours.
    @ivar ttfb_ms: milliseconds until the first byte went to the client; C{None} if none did.
    """

    time: float
    request_id: str
    key_id: str
    key_name: str
    dialect: str
    endpoint: str
    model_requested: str
    model_resolved: str
    subaccount: str
    deployment: str
    stream: bool
    status: int
    error_type: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    tokens_estimated: bool
    latency_ms: float
    ttfb_ms: float | None
    attempts: int
    failovers: int
    client_hung_up: bool
    user_agent: str

    def as_tuple(self) -> tuple[Any, ...]:
        """
        The values in L{COLUMNS} order, as C{executemany} wants them.
        """
        return tuple(getattr(self, name) for name in COLUMNS)

    def storable(self) -> UsageRecord:
        """
        This row with every text made storable in any backend (no NUL for PostgreSQL, no lone surrogate for
        UTF-8) and printable; itself when it already is (nearly always: the edge cleaned the client's text).
        """
        texts = _texts_of(self)
        try:
            if not _UNSAFE.search(" ".join(filter(None, texts))):  # one search over all of them, nearly always
                return self
        except TypeError:  # not all text after all: field by field
            pass
        changes: dict[str, Any] = {}
        for name in _TEXTS:
            value = getattr(self, name)
            if isinstance(value, str) and _UNSAFE.search(value):
                changes[name] = printable(value)
        return evolve(self, **changes) if changes else self

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> UsageRecord:
        """
        Rebuild a record from a row selected in L{COLUMNS} order (SQLite hands booleans back as integers).
        """
        values = dict(zip(COLUMNS, row))
        for name in _BOOLEANS:
            values[name] = bool(values[name])
        return cls(**values)


#: Column order of the usage table, shared by inserts and selects.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
_BOOLEANS = ("stream", "tokens_estimated", "client_hung_up")
_TEXTS = tuple(f.name for f in fields(UsageRecord) if f.type in ("str", "str | None"))
_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_texts_of = attrgetter(*_TEXTS)
