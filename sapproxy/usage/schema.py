"""
The usage database's schema, as ordered migrations per backend.

Migration I{n} (1-based) brings the schema from version I{n-1} to I{n}; the applied version is the single row of
C{schema_version}.  Append new migrations; never edit a released one.
"""

from __future__ import annotations

_USAGE_COLUMNS = """
    time DOUBLE PRECISION NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_name TEXT NOT NULL,
    dialect TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model_requested TEXT NOT NULL,
    model_resolved TEXT NOT NULL,
    subaccount TEXT NOT NULL,
    deployment TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
    status INTEGER NOT NULL,
    error_type TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    tokens_estimated BOOLEAN NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttfb_ms DOUBLE PRECISION,
    attempts INTEGER NOT NULL,
    failovers INTEGER NOT NULL,
    client_hung_up BOOLEAN NOT NULL,
    user_agent TEXT NOT NULL
"""

_API_KEYS = """
CREATE TABLE api_keys (
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    key_id TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    rpm INTEGER,
    tpm INTEGER,
    models TEXT,
    revoked DOUBLE PRECISION
)
"""

#: Responses API responses kept for previous_response_id (sapproxy.usage.responses); JSON in TEXT columns.
_RESPONSES = [
    """
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    deployment TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    items TEXT NOT NULL,
    response TEXT NOT NULL
)
""",
    "CREATE INDEX responses_expires ON responses (expires)",
]

_INDEXES = [
    "CREATE INDEX usage_records_time ON usage_records (time)",
    "CREATE INDEX usage_records_key_time ON usage_records (key_id, time)",
]

#: Per backend, migration I{n} at index I{n-1}; each migration is a list of statements run in one transaction.
MIGRATIONS: dict[str, list[list[str]]] = {
    "sqlite": [
        [f"CREATE TABLE usage_records (id INTEGER PRIMARY KEY AUTOINCREMENT, {_USAGE_COLUMNS})", *_INDEXES],
        [_API_KEYS],
        _RESPONSES,
    ],
    "postgresql": [
        [f"CREATE TABLE usage_records (id BIGSERIAL PRIMARY KEY, {_USAGE_COLUMNS})", *_INDEXES],
        [_API_KEYS],
        _RESPONSES,
    ],
}

SCHEMA_VERSION = len(MIGRATIONS["sqlite"])
assert all(len(m) == SCHEMA_VERSION for m in MIGRATIONS.values())
