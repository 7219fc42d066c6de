"""
Reading an upstream's chunked body without a state-machine step per chunk.

Every upstream stream arrives chunked, one chunk per event, and a fast upstream packs dozens of chunks into
one socket read.  Twisted's decoder takes three state-machine steps per chunk, each looked up by name, and
copies each chunk out of a bytearray: about 10 µs a chunk, half a millisecond for a 50-event stream, as much
as the gateway's own work on it (measured with bench/run.py's stream cases and py-spy, where
C{_ChunkedTransferDecoder._dataReceived_CHUNK_LENGTH} was the top function).

L{FastChunkedDecoder} is Twisted's decoder with one shortcut: when nothing is buffered, the rest of a chunk
that the last read cut and the whole chunks after it are cut out of the read in one loop; whatever is not a plain whole
chunk (a chunk cut by the read, a chunk extension, the last chunk and its trailers, anything malformed) goes
to Twisted's own state machine, from the byte where the loop stopped, so every error and limit stays
Twisted's.  The chunks the loop cut out are delivered as one piece: chunk boundaries mean nothing to a body's
reader (the relay joins what a read brought anyway), and each delivery costs a walk through the response's
state machine (parser, response, the body's protocol; about 4 Python calls).  Per 50-event stream that was
about 0.2 M instructions (bench/stream_cost.py).
"""

from __future__ import annotations

from twisted.web.http import maxChunkSizeLineLength

from sapproxy.compat import ChunkedTransferDecoder

_HEX = frozenset(b"0123456789abcdefABCDEF")


class FastChunkedDecoder(ChunkedTransferDecoder):
    def dataReceived(self, data: bytes) -> None:
        if self._buffer or self.state not in ("CHUNK_LENGTH", "BODY"):
            super().dataReceived(data)
            return
        size = len(data)
        pos = 0
        pieces = []
        if self.state == "BODY":
            # The rest of a chunk that the last read cut (Twisted's BODY state keeps nothing buffered).
            end = self.length
            if end + 2 > size or data[end:end + 2] != b"\r\n":
                super().dataReceived(data)
                return
            self.state = "CHUNK_LENGTH"
            pos = end + 2
            pieces.append(data[:end])
        find = data.find
        while pos < size and self.state == "CHUNK_LENGTH" and not self._buffer:
            eol = find(b"\r\n", pos, pos + maxChunkSizeLineLength)
            if eol <= pos:
                break
            line = data[pos:eol]
            if not _HEX.issuperset(line):
                break  # an extension, or not a size at all: Twisted's rules apply
            length = int(line, 16)
            start = eol + 2
            end = start + length
            if length == 0 or end + 2 > size or data[end:end + 2] != b"\r\n":
                break  # the last chunk, a chunk cut by the read, or a malformed one
            pos = end + 2
            pieces.append(data[start:end])
        if pieces:
            self.dataCallback(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if pos < size:
            super().dataReceived(data[pos:] if pos else data)


#: The body decoders of each upstream response parser (L{sapproxy.compat.use_transfer_decoders}).
TRANSFER_DECODERS: dict[bytes, type[ChunkedTransferDecoder]] = {b"chunked": FastChunkedDecoder}
