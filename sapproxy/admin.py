"""
C{sapproxy-admin}: manage client keys and read usage, against the database named by the gateway's config.

Exit codes: 0 done, 1 the request could not be done (bad config, unknown key, database down), 2 bad command line.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import re
import sys
import time
from typing import Any, Sequence, TextIO

from attrs import asdict

from sapproxy.usage.db import DatabaseError, open_database
from sapproxy.usage.keys import KeyRecord, KeyStoreError, create_key, list_keys, revoke_key
from sapproxy.usage.query import GROUPINGS, aggregate_usage, query_rows
from sapproxy.usage.record import COLUMNS

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class UserError(Exception):
    """
    Something the operator can fix; printed as one line, exit code 1.
    """


def parse_duration(text: str) -> float:
    """
    Seconds in C{30d}, C{24h}, C{15m}, C{90s} or C{2w}.
    """
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (expected e.g. 90s, 15m, 24h, 30d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _since(text: str) -> float:
    """
    A start time: a duration back from now (C{24h}) or a UTC date or date-time (C{2026-11-01}, C{2026-11-01T08:00}).
    """
    if _DURATION.match(text):
        return time.time() - parse_duration(text)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration or ISO date: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sapproxy-admin", description="Manage sapproxy client keys and usage.")
    parser.add_argument("--config", default="config.json", help="the gateway's config file (default: config.json)")
    parser.add_argument("--store", help="usage store URL, overriding the config's usage_store")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{keys,usage,deployments,resource-groups}")
    commands.add_parser("deployments", help="each subaccount's deployments as its AI API lists them, and which "
                        "the gateway serves")
    commands.add_parser("resource-groups", help="each subaccount's tenant resource groups")

    keys = commands.add_parser("keys", help="create, list and revoke client keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="{create,list,revoke}")
    create = key_commands.add_parser("create", help="make a new key and print it (once)")
    create.add_argument("--name", required=True)
    create.add_argument("--expires", type=parse_duration, help="lifetime, e.g. 30d (default: never expires)")
    create.add_argument("--rpm", type=_positive, help="requests per minute (default: unlimited)")
    create.add_argument("--tpm", type=_positive, help="tokens per minute (default: unlimited)")
    create.add_argument("--models", help="comma-separated models this key may use (default: all)")
    key_commands.add_parser("list", help="list keys (never shows the keys themselves)")
    revoke = key_commands.add_parser("revoke", help="revoke a key; gateways refuse it within seconds")
    revoke.add_argument("name")

    usage = commands.add_parser("usage", help="requests, tokens, errors and latency per group")
    usage.add_argument("--since", type=_since, default="24h", help="a duration back (24h) or a UTC date (default 24h)")
    usage.add_argument("--by", choices=GROUPINGS, default="key")
    usage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    usage.add_argument("--raw", action="store_true", help="print the rows themselves instead of totals")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.command in ("deployments", "resource-groups"):
        return _tenant(args, out, err)
    try:
        url = args.store or _store_url(args.config)
        db = open_database(url)
        if args.command == "keys":
            if args.keys_command == "create":
                return _create(db, args, out)
            if args.keys_command == "list":
                _print_keys(list_keys(db), out)
                return 0
            record = revoke_key(db, args.name)
            print(f"revoked key {record.name!r} (key_id {record.key_id}); gateways refuse it within seconds", file=out)
            return 0
        db.migrate()
        _usage(db, args, out)
        return 0
    except (UserError, KeyStoreError, DatabaseError) as e:
        print(f"sapproxy-admin: {e}", file=err)
        return 1
    except Exception as e:  # the database driver's own errors: one line, not a traceback
        print(f"sapproxy-admin: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=err)
        return 1


def _tenant(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sapproxy import admin_sap
    from sapproxy.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"sapproxy-admin: {e}", file=err)
        return 1
    command = admin_sap.deployments if args.command == "deployments" else admin_sap.resource_groups
    return command(config, out, _table)


def _store_url(config_path: str) -> str:
    from sapproxy.config import ConfigError, load_config

    try:
        return load_config(config_path).usage_store
    except ConfigError as e:
        raise UserError(str(e)) from None


def _create(db: Any, args: argparse.Namespace, out: TextIO) -> int:
    models = None
    if args.models is not None:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not models:
            raise UserError("--models needs at least one model name")
    key, record = create_key(db, args.name, expires_in_s=args.expires, rpm=args.rpm, tpm=args.tpm, models=models)
    print(f"created key {record.name!r} (key_id {record.key_id}, {_limits(record)}, "
          f"expires {_when(record.expires)}). The key, shown only this once:", file=out)
    print(key, file=out)
    print("Clients send it as 'Authorization: Bearer <key>' (OpenAI) or 'x-api-key: <key>' (Anthropic).", file=out)
    return 0


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%MZ")


def _limits(record: KeyRecord) -> str:
    parts = [f"rpm={record.rpm}" if record.rpm else "", f"tpm={record.tpm}" if record.tpm else ""]
    return " ".join(p for p in parts if p) or "no limits"


def _print_keys(records: list[KeyRecord], out: TextIO) -> None:
    now = time.time()
    rows = [
        [
            r.name,
            r.key_id,
            _when(r.created),
            _when(r.expires) + (" (expired)" if r.expires is not None and r.expires <= now else ""),
            _limits(r),
            ",".join(r.models) if r.models is not None else "all",
            _when(r.revoked) if r.revoked is not None else "no",
        ]
        for r in records
    ]
    _table(["name", "key_id", "created", "expires", "limits", "models", "revoked"], rows, out)


def _usage(db: Any, args: argparse.Namespace, out: TextIO) -> None:
    if args.raw:
        records = query_rows(db, args.since)
        dicts: list[dict[str, Any]] = [asdict(r) for r in records]
        columns = list(COLUMNS)
    else:
        dicts = [asdict(s) for s in aggregate_usage(db, args.since, by=args.by)]
        columns = ["group", "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "errors",
                   "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
        for d in dicts:
            d[args.by] = d.pop("group")
        columns[0] = args.by
    if args.format == "json":
        json.dump([{c: d[c] for c in columns} for d in dicts], out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(d[c]) for c in columns] for d in dicts])
    else:
        _table(columns, [[_cell(d[c]) for c in columns] for d in dicts], out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) < 1e9 else _when(value)
    return str(value)


def _table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    if not rows:
        print("(none)", file=out)
        return
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    buf = io.StringIO()
    for line in [header, *rows]:
        buf.write("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")
    out.write(buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())
