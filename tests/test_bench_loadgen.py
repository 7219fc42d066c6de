"""
The stream load generator's HTTP parsing (bench/loadgen.py): the benchmark's streams/s and events/s come from
it, so it must count every answer and event right however the bytes are cut into socket reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from conftest import bench_module


@pytest.fixture(scope="module")
def loadgen() -> Any:
    return bench_module("loadgen")


class Transport:
    """What the client writes and whether it closed."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def sse_answer(events: int) -> bytes:
    """A chunked SSE answer: one chunk per event, then C{[DONE]}."""
    chunks = [b'data: {"n":%d}\n\n' % i for i in range(events)] + [b"data: [DONE]\n\n"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body


ERROR = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\n\r\n{\"e\":\"429\"}"


def drive(loadgen: Any, reads: list[bytes], lost: bool = False) -> tuple[Any, Transport, bool]:
    """
    Feeds C{reads} to one client (then a lost connection, with C{lost}): its counts, what it wrote, and
    whether it was done with its connection.
    """
    async def go() -> tuple[Any, Transport, bool]:
        st = loadgen._StreamStats()
        done = asyncio.get_running_loop().create_future()
        client = loadgen._StreamClient(b"REQUEST", st, time.perf_counter() + 60, done)
        transport = Transport()
        client.connection_made(transport)
        for data in reads:
            client.data_received(data)
        if lost:
            client.connection_lost(None)
        finished = done.done()
        client._finish()  # its timer cancelled
        return st, transport, finished
    return asyncio.run(go())


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64, 1 << 20])
def test_answers_and_events_are_counted_whatever_the_reads(loadgen: Any, cut: int) -> None:
    wire = sse_answer(50) + sse_answer(3) + ERROR + sse_answer(1)
    st, transport, finished = drive(loadgen, [wire[i:i + cut] for i in range(0, len(wire), cut)])
    assert st.streams == 3
    assert st.events == 51 + 4 + 2
    assert st.errors == 1 and st.error_samples == ["status 429, 0 events"]
    assert transport.written == [b"REQUEST"] * 5  # one request per answer, and the next one asked for
    assert len(st.ttfb) == 3 and all(t >= 0 for t in st.ttfb)
    assert not finished


def test_an_answer_cut_off_is_an_error_and_ends_the_connection(loadgen: Any) -> None:
    st, transport, finished = drive(loadgen, [sse_answer(5)[:-20]], lost=True)
    assert st.streams == 0 and st.errors == 1 and "connection lost mid-answer" in st.error_samples[0]
    assert finished and transport.closed


def test_a_closing_answer_ends_the_connection(loadgen: Any) -> None:
    closing = sse_answer(2).replace(b"Transfer-Encoding", b"Connection: close\r\nTransfer-Encoding")
    st, transport, finished = drive(loadgen, [closing])
    assert st.streams == 1 and st.events == 3
    assert finished and transport.closed and transport.written == [b"REQUEST"]
