"""
The stream load generator's HTTP parsing (bench/loadgen.py): the benchmark's streams/s and events/s come from
it, so it must count every answer and event right however the bytes are cut into socket reads.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def loadgen() -> Any:
    spec = importlib.util.spec_from_file_location("bench_loadgen", BENCH / "loadgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_loadgen"] = module
    spec.loader.exec_module(module)
    return module


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


def drive(loadgen: Any, wire: bytes, cut: int) -> tuple[Any, Transport]:
    """Feeds C{wire} in reads of C{cut} bytes to one client; its counts and what it wrote."""
    async def go() -> tuple[Any, Transport]:
        st = loadgen._StreamStats()
        done = asyncio.get_running_loop().create_future()
        client = loadgen._StreamClient(b"REQUEST", st, time.perf_counter() + 60, done)
        transport = Transport()
        client.connection_made(transport)
        for i in range(0, len(wire), cut):
            client.data_received(wire[i:i + cut])
        client._finish()
        return st, transport
    return asyncio.run(go())


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64, 1 << 20])
def test_answers_and_events_are_counted_whatever_the_reads(loadgen: Any, cut: int) -> None:
    wire = sse_answer(50) + sse_answer(3) + ERROR + sse_answer(1)
    st, transport = drive(loadgen, wire, cut)
    assert st.streams == 3
    assert st.events == 51 + 4 + 2
    assert st.errors == 1 and st.error_samples == ["status 429, 0 events"]
    assert transport.written == [b"REQUEST"] * 5  # one request per answer, and the next one asked for
    assert len(st.ttfb) == 3 and all(t >= 0 for t in st.ttfb)


def test_an_answer_cut_off_is_an_error_and_ends_the_connection(loadgen: Any) -> None:
    async def go() -> tuple[Any, Transport]:
        st = loadgen._StreamStats()
        done = asyncio.get_running_loop().create_future()
        client = loadgen._StreamClient(b"REQUEST", st, time.perf_counter() + 60, done)
        transport = Transport()
        client.connection_made(transport)
        client.data_received(sse_answer(5)[:-20])
        client.connection_lost(None)
        assert done.done()
        return st, transport
    st, transport = asyncio.run(go())
    assert st.streams == 0 and st.errors == 1 and "connection lost mid-answer" in st.error_samples[0]
    assert transport.closed


def test_a_closing_answer_ends_the_connection(loadgen: Any) -> None:
    async def go() -> tuple[Any, Transport, bool]:
        st = loadgen._StreamStats()
        done = asyncio.get_running_loop().create_future()
        client = loadgen._StreamClient(b"REQUEST", st, time.perf_counter() + 60, done)
        transport = Transport()
        client.connection_made(transport)
        client.data_received(sse_answer(2).replace(b"Transfer-Encoding", b"Connection: close\r\nTransfer-Encoding"))
        return st, transport, done.done()
    st, transport, finished = asyncio.run(go())
    assert st.streams == 1 and st.events == 3
    assert finished and transport.closed and transport.written == [b"REQUEST"]
