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


def test_line_times_and_messages_stay_exact_with_the_per_second_cache() -> None:
    import io
    import json

    from sapproxy.logs import JSONLineObserver, rfc3339

    assert [rfc3339(t) for t in (1700000000.5, 1700000001.2, 1700000000.7, 1700000000.9996)] == [
        "2023-11-14T22:13:20.500Z", "2023-11-14T22:13:21.200Z", "2023-11-14T22:13:20.700Z", "2023-11-14T22:13:21.000Z"]
    out = io.StringIO()
    observer = JSONLineObserver(out)
    observer({"log_format": "POST /v1 200 {{odd}} 1.0ms", "log_time": 1700000000.25, "status": 200, "message": "x"})
    observer({"log_format": "hello {name}", "name": "you", "log_time": 1700000000.5})
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {"time": "2023-11-14T22:13:20.250Z", "level": "info", "namespace": "",
                     "message": "POST /v1 200 {odd} 1.0ms", "status": 200, "field_message": "x"}
    assert second["message"] == "hello you" and second["name"] == "you"
