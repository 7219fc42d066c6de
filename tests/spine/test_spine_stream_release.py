"""
A stream lets go of its request once the answer is committed: a coding agent holds a stream open for minutes,
and its body (the whole conversation, images included) may be megabytes.  What stays is a prompt estimate, for
when the stream ends without the upstream's usage.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest
from twisted.internet.defer import succeed
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from app_harness import TOKEN, Harness

#: About 4 MB of text in the client's last message.
WORDS = 400_000
TEXT = "lorem ipsum " * (WORDS // 2)


def _chunk(content: str, responses: bool) -> bytes:
    """An upstream event with C{content}: a Chat Completions chunk, or a Responses text delta."""
    if responses:
        event: dict[str, Any] = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                                 "content_index": 0, "delta": content, "sequence_number": 1}
        return b"event: response.output_text.delta\ndata: " + json.dumps(event).encode() + b"\n\n"
    event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4.1",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


#: How a Responses stream opens.
CREATED = (b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
           b'{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-4.1","output":[]}}\n\n')


class HeldStream:
    """An upstream SSE response that sends its first event, then waits for the test."""

    code = 200
    length = UNKNOWN_LENGTH

    def __init__(self, responses: bool) -> None:
        self.headers = Headers({b"content-type": [b"text/event-stream"]})
        self.protocol: Any = None
        self.responses = responses

    def deliverBody(self, protocol: Any) -> None:
        class Transport:
            def pauseProducing(self) -> None:
                pass

            def resumeProducing(self) -> None:
                pass

            def stopProducing(self) -> None:
                pass

            def loseConnection(self) -> None:
                pass

        self.protocol = protocol
        protocol.makeConnection(Transport())
        protocol.dataReceived((CREATED if self.responses else b"") + _chunk("Hello", self.responses))


class HeldStreams:
    """The gateway's inference client: every call answered by a new held stream; only body sizes are kept."""

    def __init__(self, responses: bool) -> None:
        self.responses = responses
        self.streams: list[HeldStream] = []
        self.sent: list[int] = []

    def post(self, url: bytes, headers: Any, body: bytes) -> Any:
        self.sent.append(len(body))
        self.streams.append(HeldStream(self.responses))
        return succeed(self.streams[-1])


def _big_strings(*mine: Any) -> list[str]:
    """
    The strings and bytes of 1 MB or more that a live object refers to, but C{mine}.  Only what the collector
    tracks is seen (a dict of strings alone is not), so this names holders; the memory check is the proof.
    """
    import gc

    gc.collect()  # what an earlier test left in cycles
    found = []
    for holder in gc.get_objects():
        for value in gc.get_referents(holder):
            if isinstance(value, (str, bytes)) and len(value) >= 1_000_000 and not any(value is m for m in mine):
                found.append(f"{type(value).__name__} of {len(value)} held by {type(holder).__name__}")
    return found


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "gpt-4.1", "stream": True,
                              "messages": [{"role": "user", "content": TEXT}]}),
    ("/v1/messages", {"model": "gpt-4.1", "stream": True, "max_tokens": 100,
                      "messages": [{"role": "user", "content": TEXT}]}),
    ("/v1/responses", {"model": "gpt-4.1", "stream": True, "store": False, "input": TEXT}),
], ids=["chat-passthrough", "messages-translated", "responses"])
def test_stream_holds_no_body(path: str, body: dict[str, Any]) -> None:
    """
    Once the first event reached the client, neither the client's body, its conversion nor the upstream body
    is held while the stream stays open; the usage row of a stream cut short still has its prompt estimate.
    """
    upstream = HeldStreams(responses=path == "/v1/responses")
    h = Harness(inference=upstream)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def send(body: dict[str, Any]) -> Any:
        answered = h.client.request("POST", "http://gw.test" + path, data=json.dumps(body).encode(),
                                    headers=headers)
        for _ in range(20):
            h.flush()
            h.clock.advance(0)
        assert answered.called, "the first event should have been committed to the client"
        return answered

    def end(stream: HeldStream, answered: Any) -> None:
        # Cut off after a second event, with no usage.
        stream.protocol.dataReceived(_chunk(" world", upstream.responses))
        stream.protocol.connectionLost(Failure(ResponseFailed([Failure(ResponseDone())])))
        h.wait(h.client.content(h.wait(answered)))

    # A small request first, so that what the first request of a process imports and caches is not counted.
    warm = send(json.loads(json.dumps(body).replace(TEXT, "hello")))
    end(upstream.streams[-1], warm)

    data = json.dumps(body).encode()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        answered = h.client.request("POST", "http://gw.test" + path, data=data, headers=headers)
        for _ in range(20):
            h.flush()
            h.clock.advance(0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert answered.called, "the first event should have been committed to the client"
    assert upstream.sent[-1] > len(TEXT), upstream.sent
    assert _big_strings(TEXT, data) == [], (len(data), "only the test's own copies of the body may be left")
    assert held < len(data) // 20, f"{held} bytes held during the stream for a {len(data)}-byte body"

    # The upstream is cut off after a second event, with no usage: the row is estimated from what was kept.
    end(upstream.streams[-1], answered)
    row = h.rows.rows[-1]
    assert row.stream and row.tokens_estimated
    words = len(TEXT) / 4
    assert 0.8 * words < row.prompt_tokens < 1.2 * words, (row.prompt_tokens, words)
