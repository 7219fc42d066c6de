"""
A whole (non-stream) upstream body as the dispatcher reads it (L{sapproxy.dispatch.guards.read_whole}) and
as a GPT pass-through answers with it (L{sapproxy.translate.wire.openai_passthrough.openai_response}).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from sapproxy.dispatch.forward import _whole_json
from sapproxy.dispatch.guards import BodyFailed, read_whole
from sapproxy.errors import GatewayError
from sapproxy.translate.framing.sse import Rendered
from sapproxy.translate.wire.openai_passthrough import openai_response


class Transport:
    stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class FakeResponse:
    """An IResponse whose body the test delivers."""

    def __init__(self, length: Any = None) -> None:
        self.length = length
        self.protocol: Any = None
        self.transport = Transport()

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)


def outcome(d: Any) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "fired"
    return results[0]


def test_pieces_are_joined_at_the_end() -> None:
    clock, response = Clock(), FakeResponse()
    d = read_whole(response, clock, timeout=30, limit=100)
    response.protocol.dataReceived(b'{"a":')
    response.protocol.dataReceived(b"1}")
    response.protocol.connectionLost(Failure(ResponseDone()))
    assert outcome(d) == b'{"a":1}'
    assert not clock.getDelayedCalls(), "no timer left behind"


def test_a_body_without_length_ended_by_close_is_whole() -> None:
    clock, response = Clock(), FakeResponse()
    d = read_whole(response, clock, timeout=30, limit=100)
    response.protocol.dataReceived(b"{}")
    response.protocol.connectionLost(Failure(PotentialDataLoss()))
    assert outcome(d) == b"{}"


def test_an_empty_declared_body_is_not_read() -> None:
    response = FakeResponse(length=0)
    assert outcome(read_whole(response, Clock(), timeout=30, limit=100)) == b""
    assert response.protocol is None


def test_a_body_declared_too_large_is_refused_unread() -> None:
    response = FakeResponse(length=101)
    failure = outcome(read_whole(response, Clock(), timeout=30, limit=100))
    assert isinstance(failure.value, GatewayError) and "max_response_bytes" in failure.value.message
    assert response.transport.stopped


def test_a_body_growing_too_large_is_cut_off() -> None:
    clock, response = Clock(), FakeResponse()
    d = read_whole(response, clock, timeout=30, limit=10)
    response.protocol.dataReceived(b"x" * 8)
    response.protocol.dataReceived(b"x" * 8)
    failure = outcome(d)
    assert isinstance(failure.value, GatewayError) and failure.value.kind == "bad_gateway"
    assert response.transport.stopped, "the connection is closed, not read to its end"
    response.protocol.dataReceived(b"more")
    response.protocol.connectionLost(Failure(ResponseFailed([Failure(Exception("closed"))])))
    assert not clock.getDelayedCalls()


def test_a_stalled_body_times_out_and_closes_its_connection() -> None:
    clock, response = Clock(), FakeResponse()
    d = read_whole(response, clock, timeout=30, limit=100)
    response.protocol.dataReceived(b"{")
    clock.advance(29)
    results: list[Any] = []
    d.addBoth(results.append)
    assert not results
    clock.advance(1)
    (failure,) = results
    assert isinstance(failure.value, BodyFailed) and failure.value.error.kind == "timeout"
    assert "stalled for 30 s" in failure.value.error.message
    assert response.transport.stopped
    response.protocol.connectionLost(Failure(ResponseDone()))  # after the timeout: ignored


def test_a_broken_body_may_be_retried() -> None:
    clock, response = Clock(), FakeResponse()
    d = read_whole(response, clock, timeout=30, limit=100)
    response.protocol.dataReceived(b"{")
    response.protocol.connectionLost(Failure(ResponseFailed([Failure(Exception("reset"))])))
    failure = outcome(d)
    assert isinstance(failure.value, BodyFailed) and failure.value.error.kind == "bad_gateway"
    assert not clock.getDelayedCalls()


def test_cancelling_closes_the_connection() -> None:
    clock, response = Clock(), FakeResponse()
    d = read_whole(response, clock, timeout=30, limit=100)
    d.cancel()
    assert isinstance(outcome(d).value, CancelledError)
    assert response.transport.stopped and not clock.getDelayedCalls()


AZURE = (b'{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"say \\"model\\":\\"x\\"",'
         b'"role":"assistant"}}],"created":1,"id":"c1","model":"gpt-4.1-2025-04-14","object":"chat.completion",'
         b'"prompt_filter_results":[],"usage":{"completion_tokens":2,"prompt_tokens":3,"total_tokens":5}}')


def test_pass_through_keeps_the_upstream_json_with_the_client_model() -> None:
    upstream = _whole_json(AZURE)
    answer = openai_response(upstream, "gpt-4.1")
    assert type(answer) is Rendered and answer is not upstream
    assert answer.json == AZURE.replace(b'"model":"gpt-4.1-2025-04-14"', b'"model":"gpt-4.1"')
    assert json.loads(answer.json) == answer == {**json.loads(AZURE), "model": "gpt-4.1"}


def test_pass_through_of_the_same_model_is_the_upstream_bytes() -> None:
    raw = AZURE.replace(b"gpt-4.1-2025-04-14", b"gpt-4.1")
    answer = openai_response(_whole_json(raw), "gpt-4.1")
    assert type(answer) is Rendered and answer.json == raw


@pytest.mark.parametrize("raw", [
    AZURE.replace(b'"model":"gpt-4.1-2025-04-14"', b'"model": "gpt-4.1-2025-04-14"'),  # spelled otherwise
    AZURE.replace(b'"object"', b'"x":{"model":"gpt-4.1-2025-04-14"},"object"'),  # twice
    AZURE.replace(b'"model":"gpt-4.1-2025-04-14",', b""),  # absent
])
def test_pass_through_serialises_where_the_edit_is_not_unambiguous(raw: bytes) -> None:
    answer = openai_response(_whole_json(raw), "gpt-4.1")
    assert type(answer) is dict and answer["model"] == "gpt-4.1"


def test_not_json_or_not_an_object_is_a_bad_gateway() -> None:
    for raw in (b"<html>", b"[1]", b""):
        with pytest.raises(GatewayError) as e:
            _whole_json(raw)
        assert e.value.kind == "bad_gateway"


def test_json_the_stdlib_alone_reads_is_read_and_serialised() -> None:
    raw = json.dumps({"model": "m", "choices": []}).encode("utf-16")
    upstream = _whole_json(raw)
    assert type(upstream) is dict and upstream["model"] == "m"
