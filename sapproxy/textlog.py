"""
twistd's own text log (no C{--logger}), the same lines for less CPU.

Without C{--logger}, twistd writes every event as C{"{time} [{namespace}#{level}] {message}"} through
L{twisted.logger.textFileLogObserver}, whose formatter works out the time zone and the time text (three
C{fromtimestamp} calls and a C{strftime}), the system text and the message (through C{string.Formatter}) anew
for every line: with the request log's one line a request, about 140 k instructions, 8 % of a plain request
(bench/plain_cost.py).  L{ClassicText} makes the same line from the time text of the second (made once a
second) and the system text of the namespace and level (made once each); the message of a request line has no
fields (it is rendered before it is logged), so it is its own text.  Any other event (a format with fields, a
failure and its traceback, a C{log_system}) is formatted by Twisted's own code, as before.

L{quicken_text_log} puts it in twistd's observer, which keeps writing where twistd chose (C{--logfile},
standard output, its rotation on C{SIGUSR1}); a C{--logger} or C{--syslog} observer is left alone.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import FileLogObserver, LogPublisher, formatEventAsClassicLogText, formatTime, globalLogPublisher
from twisted.logger._format import timeFormatRFC3339


class ClassicText:
    """
    L{formatEventAsClassicLogText} with twistd's time format, byte for byte, for less work on the common line.
    """

    def __init__(self, time_format: str = timeFormatRFC3339) -> None:
        self._time_format = time_format
        self._second: int | None = None
        self._time_text = ""
        self._systems: dict[tuple[Any, Any], str] = {}

    def _format_time(self, when: float | None) -> str:
        return formatTime(when, self._time_format)

    def __call__(self, event: dict[str, Any]) -> str | None:
        format = event.get("log_format")
        when = event.get("log_time")
        if (type(format) is not str or not format or "{" in format or "}" in format or "\n" in format
                or type(when) is not float or "log_failure" in event or "log_system" in event
                or "log_flattened" in event):
            return formatEventAsClassicLogText(event, formatTime=self._format_time)
        second = int(when)
        if not 0 <= when - second < 0.999999:
            # Negative, or so near the next second that the time rounds up to it: not from the second's text.
            return formatEventAsClassicLogText(event, formatTime=self._format_time)
        if second != self._second:
            self._second, self._time_text = second, formatTime(when, self._time_format)
        key = (event.get("log_namespace", "-"), event.get("log_level"))
        system = self._systems.get(key)
        if system is None:
            level = key[1]
            system = f"{key[0]}#{'-' if level is None else level.name}"
            if "\n" in system:
                return formatEventAsClassicLogText(event, formatTime=self._format_time)
            if len(self._systems) < 1024:
                self._systems[key] = system
        return f"{self._time_text} [{system}] {format}\n"


def _is_twistd_text(format_event: Callable[..., Any]) -> str | None:
    """
    The time format of L{twisted.logger.textFileLogObserver}'s formatter, or L{None} for any other formatter.
    """
    if getattr(format_event, "__qualname__", "") != "textFileLogObserver.<locals>.formatEvent":
        return None
    if getattr(format_event, "__module__", "") != "twisted.logger._file":
        return None
    names = format_event.__code__.co_freevars
    cells = format_event.__closure__ or ()
    for name, cell in zip(names, cells):
        if name == "timeFormat":
            value = cell.cell_contents
            return value if isinstance(value, str) else None
    return None


def quicken_text_log(publisher: LogPublisher = globalLogPublisher) -> int:
    """
    Give every L{twisted.logger.textFileLogObserver} of C{publisher} (twistd's, once it has started logging)
    a L{ClassicText} formatter with the same time format; how many it changed.
    """
    changed = 0
    for observer in list(getattr(publisher, "_observers", ())):
        if not isinstance(observer, FileLogObserver):
            continue
        time_format = _is_twistd_text(observer.formatEvent)
        if time_format is not None:
            observer.formatEvent = ClassicText(time_format)
            changed += 1
    return changed
