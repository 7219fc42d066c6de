"""
A big body's parse in stretches, and a turn of the reactor for everyone else between them and before the
body is encoded for its upstream.

A request's body is parsed when it has all arrived, and planned and encoded for its upstream in the same
reactor turn unless something yields in between; for a 22 MiB conversation that was one ~0.2 s stretch in
which no other request was served (issue #15, item 4).  The parse is split (L{parse_big_body}: a few ms a
stretch, a reactor round between them), and after it the request waits one more round before it is planned
and encoded (L{after_big_body}), which cannot be split (the JSON library holds the thread) but is cheap by
then (the body's strings were made ready for the encoder piece by piece).  Small bodies do not wait: for them
the turns would only add latency.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater

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
    big (L{BIG_BODY}).

    @param reactor: an L{IReactorTime} (the gateway's, a L{task.Clock} in tests).
    """
    if body_size(request) >= BIG_BODY:
        await _round(reactor)


async def _round(reactor: Any) -> None:
    # Two hops: a call made while the reactor runs its due calls waits for the next round, and between two
    # rounds the reactor polls its sockets.  One hop would run before that poll (a call for time 0 is due at
    # once) and the other requests would still wait.
    await deferLater(reactor, 0, lambda: None)
    await deferLater(reactor, 0, lambda: None)


async def parse_big_body(reactor: Any, raw: bytes, outline: Outline | None) -> Any:
    """
    C{raw} parsed as L{sapproxy.edge.parse_body} parses it, in stretches of a few ms with a reactor round
    between them (L{sapproxy.edge.parse_in_pieces}), so that other requests are served while a big body is
    parsed.

    @raise sapproxy.errors.GatewayError: as C{parse_body}.
    """
    steps = parse_in_pieces(raw, outline)
    del raw
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await _round(reactor)
