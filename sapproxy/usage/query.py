"""
Reading usage back, for the admin CLI: raw rows and per-group summaries.  Synchronous (the CLI has no reactor).
"""

from __future__ import annotations

import datetime
from typing import Any, Iterator, Literal

from attrs import frozen

from sapproxy.usage.db import Database, open_database
from sapproxy.usage.record import COLUMNS, UsageRecord

GroupBy = Literal["key", "model", "subaccount", "day"]
GROUPINGS: tuple[str, ...] = ("key", "model", "subaccount", "day")


@frozen
class UsageSummary:
    """
    Totals for one group of rows.  C{errors} counts rows with a status of 400 or more; latencies are in
    milliseconds (nearest-rank percentiles).
    """

    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    errors: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float


def query_rows(
    database: Database | str,
    since: float,
    until: float | None = None,
    *,
    key_name: str | None = None,
    model: str | None = None,
    limit: int | None = None,
) -> list[UsageRecord]:
    """
    The rows with C{since <= time < until}, oldest first, optionally for one key name or resolved model.
    """
    return list(_iter_rows(_db(database), since, until, key_name=key_name, model=model, limit=limit))


def aggregate_usage(
    database: Database | str, since: float, until: float | None = None, *, by: GroupBy = "key"
) -> list[UsageSummary]:
    """
    Per-group totals and latency percentiles over C{since <= time < until}, largest groups first.

    Aggregated in Python, the same way on both backends (SQLite has no percentile function); the window's rows
    are read into memory, which suits the CLI up to a few million rows.
    """
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; expected one of {', '.join(GROUPINGS)}")
    groups: dict[str, _Acc] = {}
    for row in _iter_rows(_db(database), since, until):
        name = _group_of(row, by)
        acc = groups.get(name)
        if acc is None:
            acc = groups[name] = _Acc()
        acc.add(row)
    summaries = [acc.summary(name) for name, acc in groups.items()]
    summaries.sort(key=lambda s: (-s.requests, s.group))
    return summaries


def _group_of(row: UsageRecord, by: str) -> str:
    if by == "key":
        return row.key_name or row.key_id
    if by == "model":
        return row.model_resolved or row.model_requested
    if by == "subaccount":
        return row.subaccount
    return datetime.datetime.fromtimestamp(row.time, datetime.timezone.utc).strftime("%Y-%m-%d")


class _Acc:
    __slots__ = ("requests", "prompt", "completion", "cached", "errors", "latencies")

    def __init__(self) -> None:
        self.requests = self.prompt = self.completion = self.cached = self.errors = 0
        self.latencies: list[float] = []

    def add(self, row: UsageRecord) -> None:
        self.requests += 1
        self.prompt += row.prompt_tokens
        self.completion += row.completion_tokens
        self.cached += row.cached_tokens
        self.errors += row.status >= 400
        self.latencies.append(row.latency_ms)

    def summary(self, group: str) -> UsageSummary:
        lat = sorted(self.latencies)
        return UsageSummary(
            group=group,
            requests=self.requests,
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            cached_tokens=self.cached,
            errors=self.errors,
            latency_p50_ms=_percentile(lat, 50),
            latency_p95_ms=_percentile(lat, 95),
            latency_p99_ms=_percentile(lat, 99),
        )


def _percentile(ordered: list[float], p: float) -> float:
    """
    The nearest-rank percentile of an ascending list (0.0 for an empty one).
    """
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def _db(database: Database | str) -> Database:
    return open_database(database) if isinstance(database, str) else database


def _iter_rows(
    db: Database,
    since: float,
    until: float | None,
    *,
    key_name: str | None = None,
    model: str | None = None,
    limit: int | None = None,
) -> Iterator[UsageRecord]:
    where = ["time >= ?"]
    params: list[Any] = [since]
    if until is not None:
        where.append("time < ?")
        params.append(until)
    if key_name is not None:
        where.append("key_name = ?")
        params.append(key_name)
    if model is not None:
        where.append("model_resolved = ?")
        params.append(model)
    statement = f"SELECT {', '.join(COLUMNS)} FROM usage_records WHERE {' AND '.join(where)} ORDER BY time, id"
    if limit is not None:
        statement += f" LIMIT {int(limit)}"

    def work(conn: Any) -> list[UsageRecord]:
        cur = conn.cursor()
        cur.execute(db.sql(statement), params)
        out: list[UsageRecord] = []
        while batch := cur.fetchmany(5000):
            out.extend(UsageRecord.from_row(tuple(r)) for r in batch)
        return out

    # Database.run holds the connection's lock for the whole read, so the rows are gathered inside it.
    yield from db.run(work)
