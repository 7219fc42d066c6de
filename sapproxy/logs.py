"""
Structured logs: one JSON object per line, for log shippers.

Use with twistd's C{--logger} option, which takes an observer factory::

    twistd --logger=sapproxy.logs.json_observer --logfile=/var/log/sapproxy.json sapproxy --config config.json

Lines go where twistd would have written its own text log: the file named by C{--logfile} (rotated like
twistd's own, at 1 MB and on C{SIGUSR1}), standard output for C{--logfile=-} or C{-n} without C{--logfile}
(containers), and C{twistd.log} for a daemon given no C{--logfile}.  C{SAPPROXY_LOG_FILE}, when set, names the
file instead.  Every line's C{time} is RFC 3339 in UTC with milliseconds (C{2026-12-06T05:17:01.123Z}).

Each request's line carries its fields (request id, key name, model, status, tokens, latency...) as JSON
members, from the C{sapproxy.request} namespace; no secret is ever a field of a log event.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from typing import IO, Any

from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface import implementer

from sapproxy.compat import twistd_log_options

_SKIP = {"log_logger", "log_source", "log_io", "log_trace", "log_format", "log_flattened", "log_legacy",
         "log_time", "log_level", "log_namespace", "log_failure", "log_text",
         # twisted.python.log's own copy of log_time, as an epoch float: one time format per line.
         "time"}
#: The members every line starts with; an event's own field of the same name is kept as C{field_<name>}.
_RESERVED = ("time", "level", "namespace", "message", "error", "traceback")


_LEVELS = frozenset(LogLevel.iterconstants())


class QuickLogger(Logger):
    """
    A L{Logger} for lines written once a request (the request log): the same events, without Twisted's check
    of the level against a freshly sorted list of every level each time (a tenth of the cost of emitting).
    """

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level not in _LEVELS:
            super().emit(level, format, **kwargs)  # Twisted's own complaint about the level
            return
        kwargs.update(log_logger=self, log_level=level, log_namespace=self.namespace, log_source=self.source,
                      log_format=format, log_time=time.time())
        if "log_trace" in kwargs:
            trace: Any = kwargs["log_trace"]
            trace.append((self, self.observer))
        self.observer(kwargs)


def rfc3339(epoch: float) -> str:
    """
    C{epoch} as RFC 3339 in UTC with milliseconds: the one time format of the gateway's logs.
    """
    millis = int(round(epoch * 1000))
    seconds, ms = divmod(millis, 1000)
    if seconds != _second[0]:  # the date and time of the second, made once a second (not once a line)
        _second[0], _second[1] = seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{_second[1]}.{ms:03d}Z"


_second: list[Any] = [None, ""]
#: C{json.dumps(..., ensure_ascii=False)} without making an encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _message(event: dict[str, Any]) -> str:
    """
    L{formatEvent}'s text; a format with no fields in it (the request lines are rendered before they are logged)
    is its own text, without a pass through the formatter.
    """
    format = event.get("log_format")
    if type(format) is str and "{" not in format and "}" not in format and "log_flattened" not in event:
        return format
    return formatEvent(event)


@implementer(ILogObserver)
class JSONLineObserver:
    """
    Write each event as one line of JSON: C{time}, C{level}, C{namespace}, C{message}, then the event's own
    fields that serialise (a failure becomes its one-line summary and its traceback text).

    @param out: a text file, or a binary one such as twistd's L{twisted.python.logfile.LogFile} (which takes
        either and rotates itself).
    """

    def __init__(self, out: IO[str] | Any) -> None:
        self._out = out

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": rfc3339(event.get("log_time") or time.time()),
            "level": getattr(level, "name", "info"),
            "namespace": event.get("log_namespace", ""),
            "message": _message(event),
        }
        failure = event.get("log_failure")
        if failure is not None:
            record["error"] = failure.getErrorMessage()
            record["traceback"] = failure.getTraceback()
        names = _NAMES
        for key, value in event.items():
            name = names.get(key)
            if name is None:
                name = _field_name(key)
                if len(names) < 4096:
                    names[key] = name
            if name and (value is None or isinstance(value, _SCALARS)):
                record[name] = value
        self._out.write(_encode(record) + "\n")
        self._out.flush()


_SCALARS = (str, int, float, bool)
#: An event's key -> its member in the line ("" for none): the same few dozen keys come again every line.
_NAMES: dict[str, str] = {}


def _field_name(key: str) -> str:
    if key in _SKIP:
        return ""
    name = key.removeprefix("log_")
    return "field_" + name if name in _RESERVED else name


def _stdout() -> IO[str]:
    if hasattr(sys.stdout, "buffer"):
        return io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True)
    return sys.stdout


def log_destination(logfile: str | None, nodaemon: bool) -> str | None:
    """
    Where twistd would write its log for these options: a path, or L{None} for standard output.

    @raise SystemExit: a daemon told to log to standard output (which it is about to close), as twistd says.
    """
    override = os.environ.get("SAPPROXY_LOG_FILE")
    if override:
        return override
    if logfile == "-":
        if not nodaemon:
            raise SystemExit("Daemons cannot log to stdout, exiting!")
        return None
    if not logfile:
        return None if nodaemon else "twistd.log"
    return logfile


def json_observer() -> ILogObserver:
    """
    The factory twistd's C{--logger} calls: a L{JSONLineObserver} writing where C{--logfile} says.
    """
    options = twistd_log_options()
    if options is None:
        path = os.environ.get("SAPPROXY_LOG_FILE")
        return JSONLineObserver(open(path, "a", encoding="utf-8") if path else _stdout())
    path = log_destination(*options)
    if path is None:
        return JSONLineObserver(_stdout())
    from twisted.python.logfile import LogFile

    out = LogFile.fromFullPath(path)
    if not signal.getsignal(signal.SIGUSR1):
        def rotate(*_: Any) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(out.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotate)
    return JSONLineObserver(out)
