"""
The JSON log observer: one parseable line per event with the request's fields.
"""

from __future__ import annotations

import io
import json

from twisted.logger import Logger

from sapproxy.logs import JSONLineObserver


def test_request_line_is_one_json_object_with_fields() -> None:
    out = io.StringIO()
    log = Logger(namespace="sapproxy.request", observer=JSONLineObserver(out))
    log.info("{method} {endpoint} {status}", method="POST", endpoint="/v1/messages", status=200,
             request_id="req_1", prompt_tokens=3, model=object())
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "POST /v1/messages 200"
    assert (record["namespace"], record["level"], record["request_id"], record["prompt_tokens"]) == (
        "sapproxy.request", "info", "req_1", 3)
    assert "model" not in record  # not serialisable: left out rather than breaking the line


def test_failures_carry_message_and_traceback() -> None:
    out = io.StringIO()
    log = Logger(observer=JSONLineObserver(out))
    try:
        1 / 0
    except ZeroDivisionError:
        log.failure("boom")
    record = json.loads(out.getvalue())
    assert record["level"] == "critical" and "ZeroDivisionError" in record["traceback"]
