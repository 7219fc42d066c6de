"""
Structured logs: one JSON object per line, for log shippers.

Use with twistd's C{--logger} option, which takes an observer factory::

    twistd --logger=sapproxy.logs.json_observer sapproxy --config config.json

Lines go to the file named by C{SAPPROXY_LOG_FILE}, or to standard output (containers).  Each request's line
carries its fields (request id, key name, model, status, tokens, latency...) as JSON members, from the
C{sapproxy.request} namespace; no secret is ever a field of a log event.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from typing import IO, Any

from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer

_SKIP = {"log_logger", "log_source", "log_io", "log_trace", "log_format", "log_flattened", "log_legacy"}


@implementer(ILogObserver)
class JSONLineObserver:
    """
    Write each event as one line of JSON: C{time}, C{level}, C{namespace}, C{message}, then the event's own
    fields that serialise (a failure becomes its one-line summary and its traceback text).
    """

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.get("log_time", time.time()))) + "Z",
            "level": getattr(level, "name", "info"),
            "namespace": event.get("log_namespace", ""),
            "message": formatEvent(event),
        }
        failure = event.get("log_failure")
        if failure is not None:
            record["error"] = failure.getErrorMessage()
            record["traceback"] = failure.getTraceback()
        for key, value in event.items():
            if key in _SKIP or key in ("log_time", "log_level", "log_namespace", "log_failure", "log_text"):
                continue
            if isinstance(value, (str, int, float, bool)) or value is None:
                record[key.removeprefix("log_")] = value
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._out.flush()


def json_observer() -> ILogObserver:
    """
    The factory twistd's C{--logger} calls.
    """
    path = os.environ.get("SAPPROXY_LOG_FILE")
    out: IO[str] = open(path, "a", encoding="utf-8") if path else io.TextIOWrapper(
        sys.stdout.buffer, encoding="utf-8", line_buffering=True) if hasattr(sys.stdout, "buffer") else sys.stdout
    return JSONLineObserver(out)
