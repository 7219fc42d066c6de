"""
twistd's text log through L{sapproxy.textlog}: the same bytes as Twisted's own formatter, for every event.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from twisted.logger import FileLogObserver, LogLevel, LogPublisher, formatEvent, textFileLogObserver
from twisted.python.failure import Failure

from sapproxy.logs import JSONLineObserver
from sapproxy.textlog import ClassicText, quicken_text_log


def _failure() -> Failure:
    try:
        1 / 0
    except ZeroDivisionError:
        return Failure()


NOW = time.time()

EVENTS: list[dict[str, Any]] = [
    # the request log's line: rendered before it is logged, fields only for the JSON observer
    {"log_format": "POST /v1/chat/completions 200 gpt-4.1 3.2ms via bench", "log_namespace": "sapproxy.request",
     "log_level": LogLevel.info, "log_time": NOW, "status": 200, "model": "gpt-4.1"},
    {"log_format": "listening on {port}", "log_namespace": "sapproxy.site", "log_level": LogLevel.info,
     "log_time": NOW, "port": 3101},
    {"log_format": "model {{odd}} name", "log_namespace": "x", "log_level": LogLevel.warn, "log_time": NOW},
    {"log_format": "two\nlines", "log_namespace": "x", "log_level": LogLevel.error, "log_time": NOW},
    {"log_format": "it broke", "log_namespace": "x", "log_level": LogLevel.critical, "log_time": NOW,
     "log_failure": _failure()},
    {"log_format": "legacy", "log_system": "HTTPChannel,3,127.0.0.1", "log_time": NOW},
    {"log_format": "no level", "log_namespace": "x", "log_time": NOW},
    {"log_format": "no namespace", "log_level": LogLevel.debug, "log_time": NOW},
    {"log_format": "no time", "log_namespace": "x", "log_level": LogLevel.info},
    {"log_format": "int time", "log_namespace": "x", "log_level": LogLevel.info, "log_time": 1_700_000_000},
    {"log_format": "", "log_namespace": "x", "log_level": LogLevel.info, "log_time": NOW},
    {"log_namespace": "x", "log_level": LogLevel.info, "log_time": NOW},
    {"log_format": b"bytes format", "log_namespace": "x", "log_level": LogLevel.info, "log_time": NOW},
    {"log_format": "flattened", "log_flattened": {}, "log_namespace": "x", "log_level": LogLevel.info,
     "log_time": NOW},
]
#: A second's start, its middle, just before the next, and so near the next that the time rounds up to it.
TIMES = [1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.9999, 1_700_000_000.9999996, 1_700_000_001.25, NOW]


def _lines(observer: FileLogObserver, events: list[dict[str, Any]]) -> bytes:
    out = observer._outFile
    for event in events:
        observer(dict(event))
    value = out.getvalue()
    return value.encode("utf-8") if isinstance(value, str) else value


@pytest.mark.parametrize("binary", [False, True])
def test_the_same_bytes_as_twisted(binary: bool) -> None:
    events = [dict(e, log_time=t) if "log_time" in e and type(e["log_time"]) is float else e
              for t in TIMES for e in EVENTS]
    make = io.BytesIO if binary else io.StringIO
    theirs = textFileLogObserver(make())
    ours = textFileLogObserver(make())
    publisher = LogPublisher()
    publisher.addObserver(ours)
    assert quicken_text_log(publisher) == 1
    assert isinstance(ours.formatEvent, ClassicText)
    expected = _lines(theirs, events)
    assert _lines(ours, events) == expected
    assert b"[sapproxy.request#info] POST /v1/chat/completions 200 gpt-4.1 3.2ms via bench\n" in expected
    assert b"ZeroDivisionError" in expected and b"\n\ttwo" not in expected and b"two\n\tlines" in expected


def test_a_time_format_of_its_own_is_kept() -> None:
    ours = textFileLogObserver(io.StringIO(), timeFormat="%H:%M")
    publisher = LogPublisher()
    publisher.addObserver(ours)
    quicken_text_log(publisher)
    ours({"log_format": "hello", "log_namespace": "x", "log_level": LogLevel.info, "log_time": 3600.5})
    assert ours._outFile.getvalue() == textFileLogObserver(io.StringIO(), timeFormat="%H:%M").formatEvent(
        {"log_format": "hello", "log_namespace": "x", "log_level": LogLevel.info, "log_time": 3600.5})


def test_other_observers_are_left_alone() -> None:
    """A C{--logger} observer (the JSON lines), or a file observer with a formatter of its own, keep theirs."""
    own = FileLogObserver(io.StringIO(), lambda event: formatEvent(event) + "\n")
    json_lines = JSONLineObserver(io.StringIO())
    publisher = LogPublisher()
    publisher.addObserver(own)
    publisher.addObserver(json_lines)
    formatter = own.formatEvent
    assert quicken_text_log(publisher) == 0
    assert own.formatEvent is formatter
