"""
Shared test helpers: where the recorded provider fixtures are, the rule that CI never skips, and a strict
client's view of an Anthropic event stream.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Recorded public provider streams, byte for byte, with their sources and licenses (tests/fixtures/README.md).
FIXTURES = ROOT / "tests" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


BENCH = ROOT / "bench"


def bench_module(name: str) -> Any:
    """
    bench/C{name}.py loaded as the module C{bench_}C{name} (bench/ is scripts, not a package; its modules
    import each other by plain name, so bench/ is on the path while one loads).
    """
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"bench_{name}"] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def fixture_path(relative: str) -> Path:
    """
    The path of one recorded fixture, which the project ships: a missing one is a broken checkout.
    """
    path = FIXTURES / relative
    assert path.exists(), f"recorded fixture {relative} not found under {FIXTURES}"
    return path


def need(condition: bool, reason: str) -> None:
    """
    Skip the calling test with C{reason} unless C{condition}; under C{CI=true} a missing need is a failure.
    """
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(reason)


#: The machine's PostgreSQL (trust auth); each test that needs it gets a schema of its own there.
PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """
    A fresh schema in the machine's PostgreSQL, dropped afterwards; the test is skipped (failed under
    C{CI=true}) when the server or the driver is missing.
    """
    try:
        import psycopg

        psycopg.connect(PG_BASE, connect_timeout=2).close()
    except Exception as e:  # noqa: BLE001 - driver missing or server down: both mean skip
        need(False, f"PostgreSQL at 127.0.0.1:5432 unavailable: {str(e).splitlines()[0] if str(e) else e!r}")
        raise
    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextlib.contextmanager
def usage_database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of an empty usage database: a fresh SQLite file in C{directory}, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'usage.db'}"
        return
    with postgres_schema() as schema:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"


def accumulate_anthropic(events: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Rebuild a message from its Anthropic stream events as a strict client would: every event valid for the
    official SDK's types, blocks opened in index order and one at a time, the stream ended by C{message_stop},
    and the result a valid C{Message}.
    """
    from anthropic.types import Message, RawMessageStreamEvent
    from pydantic import TypeAdapter

    validate = TypeAdapter(RawMessageStreamEvent).validate_python
    message: dict[str, Any] = {}
    open_blocks: dict[int, dict[str, Any]] = {}
    json_parts: dict[int, str] = {}
    for event in events:
        validate(event)
        kind = event["type"]
        if kind == "message_start":
            assert not message, "a second message_start"
            message = dict(event["message"], content=[])
        elif kind == "content_block_start":
            assert event["index"] == len(message["content"])
            assert not open_blocks, "a block started before the previous one stopped"
            block = dict(event["content_block"])
            message["content"].append(block)
            open_blocks[event["index"]] = block
        elif kind == "content_block_delta":
            block, delta = open_blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                json_parts[event["index"]] = json_parts.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop":
            block = open_blocks.pop(event["index"])
            if block["type"] == "tool_use":
                block["input"] = json.loads(json_parts.get(event["index"]) or "{}")
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            for key in ("stop_sequence", "stop_details"):
                if key in event["delta"]:
                    message[key] = event["delta"][key]
            message["usage"] = event["usage"]
    assert not open_blocks
    assert events[-1] == {"type": "message_stop"}
    Message.model_validate(message)
    return message
