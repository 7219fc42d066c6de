"""
Pure, synchronous format converters and stream state machines.

Nothing in this package knows about HTTP, sockets or Twisted, so every converter can be tested with plain
values and runs at the speed of the JSON it touches.

The internal representation (IR) between dialects is the Anthropic Messages API: request bodies, response
bodies and stream events, as plain JSON-shaped dicts.  It is the richest of the three dialects (typed
content blocks, thinking with signatures, cache control), so nothing a client relies on has to be dropped
on the way through it.  Adding a dialect means one converter pair to and from the IR, not one per
combination.

Stream state machines share one shape::

    feed(event: dict) -> list[dict]     # one upstream event in, zero or more client events out
    finish() -> list[dict]              # the upstream ended; close what is open

and keep what they learnt of the token counts in a C{usage} attribute (a L{Usage} or L{None}).
"""

from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.usage import Usage

__all__ = ["InvalidRequest", "Usage"]
