"""
What the admin page shows, read from the usage store: blocking functions, run on the store's thread pool.

Usage is aggregated in Python (as L{sapproxy.usage.query} does), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from sapproxy.usage.db import Database

#: The time ranges the charts offer: name -> (seconds back, bucket width in seconds).
RANGES: dict[str, tuple[int, int]] = {"24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600), "30d": (30 * 86400, 86400)}
#: Series drawn per chart; the rest are summed as "other" so a chart stays readable.
MAX_SERIES = 8


@frozen
class Series:
    """
    Tokens per bucket for each group (key or model) that used any, over C{buckets} (epoch seconds of each
    bucket's start); requests and tokens in the whole range for every group, refused requests included.
    """

    buckets: tuple[float, ...]
    groups: dict[str, list[int]]
    requests: dict[str, int]
    tokens: dict[str, int]


@frozen
class Overview:
    by_key: Series
    by_model: Series
    last_used: dict[str, float]
    errors: list[dict[str, Any]]
    deployments: dict[str, dict[str, Any]]


def _series(rows: list[tuple[Any, ...]], index: int, start: float, bucket: int, now: float) -> Series:
    first = int(start // bucket)
    count = int(now // bucket) - first + 1
    totals: dict[str, int] = {}
    groups: dict[str, list[int]] = {}
    requests: dict[str, int] = {}
    for row in rows:
        name = row[index] or "-"
        tokens = int(row[3] or 0) + int(row[4] or 0)
        slot = int(float(row[0]) // bucket) - first
        if not 0 <= slot < count:
            continue
        groups.setdefault(name, [0] * count)[slot] += tokens
        totals[name] = totals.get(name, 0) + tokens
        requests[name] = requests.get(name, 0) + 1
    # A group without a token in the range (only refused requests) has nothing to draw; it keeps its count.
    ranked = sorted((g for g in groups if totals[g]), key=lambda g: (-totals[g], g))
    groups = {g: groups[g] for g in ranked}
    if len(ranked) > MAX_SERIES:
        other = [0] * count
        for name in ranked[MAX_SERIES - 1:]:
            other = [a + b for a, b in zip(other, groups.pop(name))]
            requests["other"] = requests.get("other", 0) + requests.pop(name)
            totals["other"] = totals.get("other", 0) + totals.pop(name)
        groups["other"] = other
        ranked = ranked[:MAX_SERIES - 1] + ["other"]
    return Series(buckets=tuple(float((first + i) * bucket) for i in range(count)),
                  groups={g: groups[g] for g in ranked}, requests=requests, tokens=totals)


def overview(db: Database, range_name: str, now: float) -> Overview:
    """
    Everything of the dashboard that comes from the usage rows of the range C{range_name} (a key of L{RANGES}).
    """
    back, bucket = RANGES[range_name]
    start = now - back

    def work(conn: Any) -> Overview:
        cur = conn.cursor()
        cur.execute(db.sql("SELECT time, key_name, model_resolved, prompt_tokens, completion_tokens, deployment, "
                           "status, model_requested FROM usage_records WHERE time >= ?"), (start,))
        rows = cur.fetchall()
        cur.execute("SELECT key_id, MAX(time) FROM usage_records GROUP BY key_id")
        last_used = {r[0]: float(r[1]) for r in cur.fetchall()}
        cur.execute(db.sql("SELECT time, key_name, endpoint, model_requested, status, error_type, request_id, "
                           "deployment FROM usage_records WHERE status >= 400 ORDER BY time DESC LIMIT 20"))
        errors = [dict(zip(("time", "key_name", "endpoint", "model", "status", "error_type", "request_id",
                            "deployment"), r)) for r in cur.fetchall()]
        return Overview(by_key=_series(rows, 1, start, bucket, now),
                        by_model=_series([(*r[:2], r[2] or "(no model resolved)", *r[3:]) for r in rows], 2,
                                         start, bucket, now),
                        last_used=last_used, errors=errors, deployments=_deployments(rows, now))

    return db.run(work)


def _deployments(rows: list[tuple[Any, ...]], now: float) -> dict[str, dict[str, Any]]:
    """
    Per deployment id, over the last hour: requests, errors (status 500 and up, upstream failures), the last
    status and when.
    """
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        when, deployment, status = float(row[0]), row[5], int(row[6])
        if not deployment or when < now - 3600:
            continue
        entry = out.setdefault(deployment, {"requests": 0, "errors": 0, "last_status": None, "last_time": 0.0})
        entry["requests"] += 1
        if status >= 500:
            entry["errors"] += 1
        if when >= entry["last_time"]:
            entry["last_time"], entry["last_status"] = when, status
    return out
