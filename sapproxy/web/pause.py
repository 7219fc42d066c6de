"""
A turn of the reactor for everyone else between reading a big body and sending it upstream.

A request's body is parsed when it has all arrived, and planned and encoded for its upstream in the same
reactor turn unless something yields in between; for a 22 MiB conversation that is one ~0.1 s stretch in which
no other request is served (issue #15, item 4).  Neither half can yield inside itself (the JSON library holds
the thread), but the two halves can be apart: after a big parse the request waits one reactor turn, in which
the other requests' ready I/O is read and answered, so the longest stall is the longer half, not their sum.  Small bodies do
not wait: for them the turn would only add latency.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater

#: A body at least this large (bytes) waits one reactor turn after its parse (parsing 1 MiB takes a few ms).
BIG_BODY = 1 << 20


def body_size(request: Any) -> int:
    """The size of the body C{request} was sent with (its C{content}, a file), 0 when it has none."""
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
        # Two hops: a call made while the reactor runs its due calls waits for the next round, and between
        # two rounds the reactor polls its sockets.  One hop would run before that poll (a call for time 0 is
        # due at once) and the other requests would still wait for both halves.
        await deferLater(reactor, 0, lambda: None)
        await deferLater(reactor, 0, lambda: None)
