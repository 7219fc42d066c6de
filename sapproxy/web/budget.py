"""
The gateway-wide budget of big request bodies held at once (issue #15, item 4).

A body costs a few times its size while it is parsed and converted (the bytes read, the parsed strings, their
UTF-8 for the encoder, the upstream body), and a request keeps most of that until it ends.  Four 28 MiB bodies
took the process from 144 to 531 MiB; nothing stopped forty.  So every body of L{BIG_BODY} bytes or more takes
its size from one budget when it starts to arrive (from Content-Length, or as a chunked upload grows) and gives
it back when its request ends, or earlier when its stream is committed and the body let go (issue #12): a body that would overdraw the budget is refused at once with a 503 and
Retry-After (another request will have ended by then), one larger than the whole budget with a 413, before
either is read.  Small bodies never touch it: their cost is a comparison.
"""

from __future__ import annotations

#: A body at least this large (bytes) is a big one: it takes from the budget, and is parsed in pieces between
#: reactor turns (L{sapproxy.web.pause}).  Parsing 1 MiB takes a few ms.
BIG_BODY = 1 << 20

#: Seconds a client refused for want of budget is asked to wait.
RETRY_AFTER = 2


class BodyBudget:
    """
    Bytes of big request bodies held at once, and the refusals for want of them.

    @ivar limit: the budget (config C{body_budget_bytes}); a reload may change it, bodies held stay held.
    @ivar held: bytes taken now.
    @ivar refused: bodies refused since start because the budget was spent (503).
    @ivar refused_alone: bodies refused since start because they alone exceed the budget (413).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0
        self.refused_alone = 0

    def take(self, size: int) -> int:
        """
        Take C{size} bytes: 0 when they were taken, else the status of the refusal (413: more than the whole
        budget, 503: more than what is left now).
        """
        if self.held + size <= self.limit:
            self.held += size
            return 0
        if size > self.limit:
            self.refused_alone += 1
            return 413
        self.refused += 1
        return 503

    def give_back(self, size: int) -> None:
        self.held = max(self.held - size, 0)


class NoBody:
    """
    The content of a request whose bytes are not kept: refused before they were read (too large, past the
    budget), or already parsed in pieces.  Reads as an empty file; what is written to it goes nowhere.
    """

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *_: object) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def read(self, *_: object) -> bytes:
        return b""

    def close(self) -> None:
        pass


#: One is enough: it holds nothing.
NO_BODY = NoBody()
