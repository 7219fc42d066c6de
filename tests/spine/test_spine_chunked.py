"""
The upstream body decoder (L{sapproxy.upstreams.chunked}) against Twisted's own: for any body, valid or not,
and any split into reads, the same chunks reach the callback, the same rest reaches the finish callback, and
the same error is raised at the same point.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.web._newclient import HTTPClientParser

from sapproxy.compat import ChunkedTransferDecoder
from sapproxy.upstreams.chunked import FastChunkedDecoder
from sapproxy.upstreams.http import _CycleFreeClientProtocol


def decode(cls: type, reads: list[bytes]) -> list[Any]:
    seen: list[Any] = []
    decoder = cls(lambda data: seen.append(("data", bytes(data))), lambda rest: seen.append(("end", bytes(rest))))
    for read in reads:
        try:
            decoder.dataReceived(read)
        except Exception as e:  # the error type is part of what must agree
            seen.append(("error", type(e).__name__))
            break
    return seen


def joined(events: list[Any]) -> list[Any]:
    """Data callbacks merged: a chunk may be delivered whole or in pieces, as long as the bytes agree."""
    out: list[Any] = []
    for kind, value in events:
        if kind == "data" and out and out[-1][0] == "data":
            out[-1] = ("data", out[-1][1] + value)
        else:
            out.append((kind, value))
    return out


def chunked(pieces: list[bytes], ext: bool = False, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";a=b" if ext and i == 1 else b"", p)
                    for i, p in enumerate(pieces) if p)
    return body + b"0\r\n" + trailer + b"\r\nextra"


def splits(body: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(c % (len(body) + 1) for c in cuts)
    return [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(max_size=40), max_size=8), cuts=st.lists(st.integers(0, 10_000), max_size=6),
       ext=st.booleans(), trailer=st.sampled_from([b"", b"X-T: 1\r\n"]), upper=st.booleans())
def test_valid_bodies_decode_as_twisted_does(pieces: list[bytes], cuts: list[int], ext: bool, trailer: bytes,
                                            upper: bool) -> None:
    body = chunked(pieces, ext, trailer)
    if upper:
        body = body.replace(b"a\r\n", b"A\r\n", 1)
    reads = splits(body, cuts)
    fast, slow = decode(FastChunkedDecoder, reads), decode(ChunkedTransferDecoder, reads)
    assert joined(fast) == joined(slow)
    if not upper:
        assert b"".join(v for k, v in joined(fast) if k == "data") == b"".join(pieces)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=5),
       at=st.integers(0, 10_000), junk=st.sampled_from([b"x", b"\r", b"\n", b"-1", b"0x", b" ", b"\r\n", b"+"]),
       cuts=st.lists(st.integers(0, 10_000), max_size=4))
def test_malformed_bodies_fail_as_twisted_does(pieces: list[bytes], at: int, junk: bytes, cuts: list[int]) -> None:
    body = chunked(pieces)
    at %= len(body)
    body = body[:at] + junk + body[at:]
    reads = splits(body, cuts)
    assert joined(decode(FastChunkedDecoder, reads)) == joined(decode(ChunkedTransferDecoder, reads))


def test_long_size_lines_are_refused() -> None:
    body = b"0" * 2000 + b"5\r\nhello\r\n0\r\n\r\n"
    assert decode(FastChunkedDecoder, [body])[-1] == ("error", "_MalformedChunkedDataError")


def test_the_upstream_client_protocol_reads_chunked_bodies_with_it() -> None:
    from twisted.web._newclient import Request
    from twisted.web.http_headers import Headers

    protocol = _CycleFreeClientProtocol()
    protocol.makeConnection(StringTransport())
    request = Request(b"GET", b"/", Headers({b"host": [b"example"]}), None)
    responses: list[Any] = []
    protocol.request(request).addCallback(responses.append)
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    (response,) = responses
    assert isinstance(protocol._parser, HTTPClientParser)
    assert isinstance(protocol._parser.bodyDecoder, FastChunkedDecoder)
    from twisted.internet.protocol import Protocol

    class Collect(Protocol):
        def __init__(self) -> None:
            self.data = b""

        def dataReceived(self, data: bytes) -> None:
            self.data += data

    body = Collect()
    response.deliverBody(body)
    protocol.dataReceived(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert body.data == b"hello world"
