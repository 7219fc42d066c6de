"""
A big body's parse in stretches, and a turn of the reactor for everyone else between them and before the
body is encoded for its upstream.

A request's body is parsed when it has all arrived, and planned and encoded for its upstream in the same
reactor turn unless something yields in between; for a 22 MiB conversation that was one ~0.2 s stretch in
which no other request was served (issue #15, item 4).  Now the parse is split (L{parse_big_body}: pieces of a
few ms), and after it the request waits for one more step before it is planned and encoded
(L{after_big_body}), which cannot be split (the JSON library holds the thread) but is cheap by then (the
body's strings were made ready for the encoder piece by piece).  The steps of all big bodies under way take
turns, one step a reactor round (a L{Cooperator} per reactor), so that ten bodies at once stall the reactor no
longer than one.  Small bodies do not wait: for them the turns would only add latency.
"""

from __future__ import annotations

from typing import Any, Generator, Iterator
from weakref import WeakKeyDictionary

from twisted.internet.task import Cooperator

from sapproxy.edge import Outline, parse_in_pieces
from sapproxy.web.budget import BIG_BODY

__all__ = ["BIG_BODY", "after_big_body", "body_size", "parse_big_body"]


def body_size(request: Any) -> int:
    """The size of the body C{request} was sent with (its C{content}, a file), 0 when it has none."""
    parsed = getattr(request, "parsed_size", None)
    if parsed is not None:  # its bytes are gone: parsed in pieces (L{parse_big_body})
        return int(parsed)
    content = getattr(request, "content", None)
    if content is None:
        return 0
    position = content.tell()
    try:
        return int(content.seek(0, 2))
    finally:
        content.seek(position)


async def after_big_body(reactor: Any, request: Any) -> None:
    """
    Let the reactor poll its sockets and serve what is ready before C{request}'s body goes on, when the body is
    big (L{BIG_BODY}): its planning and encoding, which cannot be split, then get a round of their own.

    @param reactor: an L{IReactorTime} (the gateway's, a L{task.Clock} in tests).
    """
    if body_size(request) >= BIG_BODY:
        await _turns(reactor).cooperate(iter((None,))).whenDone()


async def parse_big_body(reactor: Any, raw: bytes, outline: Outline | None) -> Any:
    """
    C{raw} parsed as L{sapproxy.edge.parse_body} parses it, in stretches of a few ms with a reactor round
    between them (L{sapproxy.edge.parse_in_pieces}), so that other requests are served while a big body is
    parsed.

    @raise sapproxy.errors.GatewayError: as C{parse_body}.
    """
    result: list[Any] = []

    def steps(pieces: Generator[None, None, Any]) -> Iterator[None]:
        yield  # the first piece after a poll, not in the round that read the body's last bytes
        result.append((yield from pieces))

    await _turns(reactor).cooperate(steps(parse_in_pieces(raw, outline))).whenDone()
    return result[0]


#: The big bodies' turns, one per reactor: whatever the number of big bodies under way, each reactor round
#: runs one step of one of them (a piece of a parse, or a planning and encoding), in turn.
_TURNS: WeakKeyDictionary[Any, Cooperator] = WeakKeyDictionary()


def _one_step() -> bool:
    return True


def _turns(reactor: Any) -> Cooperator:
    turns = _TURNS.get(reactor)
    if turns is None:
        # A call for time 0 made while the reactor runs its due calls runs in its next round, after it has
        # polled its sockets.  (One made while it handles I/O runs before that poll: hence the leading empty
        # step of each task.)
        turns = _TURNS[reactor] = Cooperator(terminationPredicateFactory=lambda: _one_step,
                                             scheduler=lambda tick: reactor.callLater(0, tick))
    return turns
