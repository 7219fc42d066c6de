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
from sapproxy.clientsetup import CLIENTS, setup_for
from sapproxy.usage.keys import (KEY_PROPAGATION_WAIT, KEY_REFRESH_INTERVAL, KeyRecord, KeyStoreError, create_key,
                                 list_keys, revoke_key)
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
                                     metavar="{keys,usage,deployments,resource-groups,configure}")
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
    revoke = key_commands.add_parser("revoke", help="revoke a key; running gateways refuse it once the command returns")
    revoke.add_argument("name")
    for sub in (create, revoke):
        sub.add_argument("--no-wait", action="store_true",
                         help=f"return at once instead of waiting {KEY_PROPAGATION_WAIT:g} s for running gateways "
                              "to read the change")

    usage = commands.add_parser("usage", help="requests, tokens, errors and latency per group")
    usage.add_argument("--since", type=_since, default="24h", help="a duration back (24h) or a UTC date (default 24h)")
    usage.add_argument("--by", choices=GROUPINGS, default="key")
    usage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    usage.add_argument("--raw", action="store_true", help="print the rows themselves instead of totals")

    configure = commands.add_parser("configure", help="print (or write) a coding client's configuration for this "
                                    "gateway, with the models it serves")
    configure.add_argument("client", choices=CLIENTS)
    configure.add_argument("--key", help="the client key to put in the file (default: read from the environment)")
    configure.add_argument("--write", action="store_true", help="write the file where the client reads it "
                           "(JSON files are merged; any other file is kept as <name>.sapproxy-backup)")
    configure.add_argument("--url", help="the gateway's URL as clients reach it (default: from the config's "
                           "host and port)")
    configure.add_argument("--home", help=argparse.SUPPRESS)
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
        if args.command == "configure":
            return _configure(args, out, err)
        url = args.store or _store_url(args.config)
        db = open_database(url)
        if args.command == "keys":
            if args.keys_command == "create":
                return _create(db, args, out)
            if args.keys_command == "list":
                _print_keys(list_keys(db), out)
                return 0
            record = revoke_key(db, args.name)
            print(f"revoked key {record.name!r} (key_id {record.key_id}).", file=out)
            _wait_for_gateways(args, out, "refuse it")
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
    _wait_for_gateways(args, out, "accept it")
    return 0


def _wait_for_gateways(args: argparse.Namespace, out: TextIO, effect: str) -> None:
    """
    Running gateways read the key table every L{KEY_REFRESH_INTERVAL} seconds: wait until every one that can
    reach the store has read this change, so that the key works (or is refused) the moment the command returns.
    """
    if args.no_wait:
        print(f"Not waiting: running gateways {effect} within {KEY_PROPAGATION_WAIT:g} s (they re-read keys every "
              f"{KEY_REFRESH_INTERVAL:g} s).", file=out)
        return
    out.flush()
    time.sleep(KEY_PROPAGATION_WAIT)
    print(f"Waited {KEY_PROPAGATION_WAIT:g} s: running gateways (they re-read keys every {KEY_REFRESH_INTERVAL:g} s) "
          f"now {effect}.", file=out)


def _configure(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from pathlib import Path

    from sapproxy.config import ConfigError, load_config
    from sapproxy.models import ModelCatalog

    try:
        config = load_config(args.config)
    except ConfigError as e:
        raise UserError(str(e)) from None
    configured = [m for account in config.subaccounts.values() for m in account.deployment_models
                  if config.model_filters.allows(m)]
    catalog = ModelCatalog(configured, config.models, config.aliases, strict=config.strict_model_names)
    models = {name: catalog.family(name) for name in catalog.names}
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", "::") else config.host
    base = args.url or (f"http://{host}:{config.port}" if ":" not in host else f"http://[{host}]:{config.port}")
    try:
        setup = setup_for(args.client, base, models, args.key)
    except ValueError as e:
        raise UserError(str(e)) from None
    route = setup.needs_route.replace("{model}", next(iter(models), "m"))
    if not _gateway_serves(route):
        print(f"sapproxy-admin: note: {args.client} calls {setup.needs_route}, which this gateway version does not "
              "serve yet; the configuration is right, the client's requests will get 404 until it does", file=err)
    if not args.write:
        print(f"# ~/{setup.path}", file=out)
        out.write(setup.text)
        print("", file=out)
        for note in setup.notes:
            print(note, file=out)
        return 0
    home = Path(args.home) if args.home else Path.home()
    target = home / setup.path
    target.parent.mkdir(parents=True, exist_ok=True)
    text = setup.text
    if target.exists():
        existing = target.read_text(encoding="utf-8")
        if setup.merge_json:
            try:
                current = json.loads(existing) if existing.strip() else {}
            except ValueError:
                raise UserError(f"{target} is not valid JSON; fix or move it, then run this again") from None
            if not isinstance(current, dict):
                raise UserError(f"{target} is not a JSON object; fix or move it, then run this again")
            text = json.dumps(_merge(current, json.loads(setup.text)), indent=2) + "\n"
        elif existing != text:
            backup = target.with_name(target.name + ".sapproxy-backup")
            backup.write_text(existing, encoding="utf-8")
            print(f"kept the previous {target} as {backup}", file=out)
    target.write_text(text, encoding="utf-8")
    if args.key is not None:
        target.chmod(0o600)
    print(f"wrote {target}", file=out)
    for note in setup.notes:
        print(note, file=out)
    return 0


def _merge(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """
    C{new} merged into C{current}: objects merged key by key, anything else replaced.
    """
    merged = dict(current)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _gateway_serves(path: str) -> bool:
    """
    Whether this version of the gateway has a route for a POST to C{path} (a GET for model lists).
    """
    from werkzeug.exceptions import MethodNotAllowed, NotFound

    from sapproxy.web.app import build_app
    from sapproxy.web.frame import ServicesRef

    adapter = build_app(ServicesRef(None)).url_map.bind("gateway")  # type: ignore[arg-type]
    try:
        adapter.match(path, method="POST")
        return True
    except MethodNotAllowed:
        return True
    except NotFound:
        return False


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
