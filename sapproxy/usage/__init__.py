"""
Who used which model how much: the usage store, its schema, and the client keys kept beside it.

The gateway records one L{UsageRecord} per client request through L{UsageStore.record}, which never blocks the
reactor; the admin CLI reads the same database with the synchronous functions of L{sapproxy.usage.query} and
L{sapproxy.usage.keys}.
"""

from sapproxy.usage.db import Database, DatabaseError, open_database
from sapproxy.usage.keys import KeyRecord, KeyRing, KeyStoreError, key_id_for
from sapproxy.usage.query import UsageSummary, aggregate_usage, query_rows
from sapproxy.usage.record import UsageRecord
from sapproxy.usage.service import UsageStoreService
from sapproxy.usage.store import UsageStore, open_usage_store

__all__ = [
    "Database",
    "DatabaseError",
    "KeyRecord",
    "KeyRing",
    "KeyStoreError",
    "UsageRecord",
    "UsageStore",
    "UsageStoreService",
    "UsageSummary",
    "aggregate_usage",
    "key_id_for",
    "open_database",
    "open_usage_store",
    "query_rows",
]
