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

Where things are:

  - L{sapproxy.translate.ir}: the IR as types (request, message, content blocks, stream events, usage);
  - L{sapproxy.translate.anthropic_stream}: the one writer of IR stream events, which keeps any converter's
    output a valid Anthropic event sequence;
  - C{client/}: one module per client dialect (client body <-> IR); C{wire/}: one module (or package) per
    upstream wire format (IR <-> upstream body and stream);
  - C{framing/}: SSE and AWS event-stream framing, and the pipeline that chains a source, translators and
    an encoder;
  - L{sapproxy.translate.jsontext}: the one compact JSON encoder of the gateway.

Nothing here imports Twisted, treq or Klein: C{tests/test_import_rules.py} holds it.
"""

from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.usage import Usage

__all__ = ["InvalidRequest", "Usage"]
