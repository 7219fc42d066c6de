"""
The one writer of Anthropic (IR) stream events.

Every wire format whose upstream is not Anthropic itself (GPT chat chunks, Gemini chunks, ConverseStream
events) turns what it reads into the same event sequence::

    message_start
    (content_block_start  content_block_delta*  content_block_stop)*
    message_delta  message_stop                       -- or an error event, which ends the stream

The converters decide I{what} to say (which block, which delta, which stop reason); L{AnthropicStreamWriter}
decides the indices and the order, so that no converter can produce a sequence an Anthropic SDK refuses:
blocks numbered 0, 1, 2... in the order they open, one block open at a time (opening one closes the one
before), no delta outside an open block of its kind, nothing after C{message_stop} or an error.  Asking for anything
else is a bug in the converter and raises L{StreamOrderError} rather than reaching a client.

One deliberate exception, L{AnthropicStreamWriter.tool_input_at}: a tool call's argument fragment that
arrives after the call's block was closed (OpenAI-compatible servers interleave parallel tool calls by
index) is written to that block's index.  The Anthropic SDKs accumulate C{input_json_delta}s by index, so
this keeps the arguments whole, where dropping the fragment would corrupt them.

Text deltas, the hottest events of a stream, are rendered from a per-block template
(L{sapproxy.translate.framing.sse.Rendered}) so the encoder does not serialise them again.

The writer appends to the caller's C{out} list, which is what the converters' C{feed}/C{finish} return.
"""

from __future__ import annotations

from typing import Any, cast

from sapproxy.translate import ir
from sapproxy.translate.framing.sse import Rendered, json_text, split_template
from sapproxy.translate.jsontext import json_string

__all__ = ["AnthropicStreamWriter", "StreamOrderError", "message_start"]


#: The block type each delta type belongs to.
_DELTA_BLOCK = {
    "text_delta": "text",
    "citations_delta": "text",
    "thinking_delta": "thinking",
    "signature_delta": "thinking",
    "input_json_delta": "tool_use",
}


class StreamOrderError(RuntimeError):
    """
    A converter asked for an event that would break the Anthropic event order: a bug, not bad input.
    """


def message_start(message_id: str, model: str, usage: ir.Usage | None = None) -> ir.MessageStartEvent:
    """
    The opening event of a stream: an empty assistant message, with the usage known so far.
    """
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage if usage is not None else {"input_tokens": 0, "output_tokens": 0},
        },
    }


class AnthropicStreamWriter:
    """
    The index and order keeper of one Anthropic stream (see the module docstring).

    @ivar open_type: the C{type} of the open content block, or L{None} when none is open.
    @ivar open_index: the index of the open block (or of the last one opened, once it is closed; -1 before).
    """

    __slots__ = ("started", "ended", "open_type", "open_index", "_types", "_template")

    def __init__(self) -> None:
        #: C{message_start} was written.
        self.started = False
        #: C{message_stop} or an error was written: the stream is over.
        self.ended = False
        self.open_type: str | None = None
        self.open_index = -1
        self._types: list[str] = []  # block index -> block type
        #: (block index, the text delta's JSON before the text or None): see L{text}
        self._template: tuple[int, bytes | None] = (-1, None)

    def _check_live(self) -> None:
        if self.ended:
            raise StreamOrderError("the stream has ended")
        if not self.started:
            raise StreamOrderError("message_start has not been written")

    def start(self, out: list[ir.StreamEvent], message_id: str, model: str, usage: ir.Usage | None = None) -> None:
        """C{message_start}, once, before anything else."""
        if self.started or self.ended:
            raise StreamOrderError("message_start was already written")
        self.started = True
        out.append(message_start(message_id, model, usage))

    def open(self, out: list[ir.StreamEvent], block: ir.ContentBlock) -> int:
        """
        C{content_block_start} of C{block} at the next index, closing the open block first.

        @return: the new block's index.
        """
        self._check_live()
        if self.open_type is not None:
            out.append({"type": "content_block_stop", "index": self.open_index})
        index = len(self._types)
        self._types.append(block["type"])
        self.open_type = block["type"]
        self.open_index = index
        out.append({"type": "content_block_start", "index": index, "content_block": block})
        return index

    def delta(self, out: list[ir.StreamEvent], delta: ir.BlockDelta) -> None:
        """A C{content_block_delta} on the open block, which must be of the delta's kind."""
        if self.open_type is None or _DELTA_BLOCK.get(delta["type"]) != self.open_type:
            raise StreamOrderError(f"a {delta['type']} with no open block of its kind (open: {self.open_type})")
        out.append({"type": "content_block_delta", "index": self.open_index, "delta": delta})

    def text(self, out: list[ir.StreamEvent], text: str) -> None:
        """
        A C{text_delta} on the open text block, rendered from the block's template (L{Rendered}).
        """
        if self.open_type != "text":
            raise StreamOrderError(f"a text_delta with no open text block (open: {self.open_type})")
        index = self.open_index
        event: dict[str, Any] = {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}
        cached, prefix = self._template
        if cached != index:
            blank = {**event, "delta": {"type": "text_delta", "text": ""}}
            prefix = split_template(json_text(blank), b'""', b"}}")
            self._template = (index, prefix)
        if prefix is not None:
            event = Rendered(event, prefix + json_string(text) + b"}}")
        out.append(cast(ir.ContentBlockDeltaEvent, event))

    def tool_input_at(self, out: list[ir.StreamEvent], index: int, partial_json: str) -> None:
        """
        An C{input_json_delta} for the tool_use block at C{index}: the open block, or (the one exception to
        the order, see the module docstring) a tool_use block already closed.
        """
        self._check_live()
        if not (0 <= index < len(self._types)) or self._types[index] != "tool_use":
            raise StreamOrderError(f"block {index} is not a tool_use block")
        out.append({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": partial_json}})

    def close(self, out: list[ir.StreamEvent]) -> None:
        """C{content_block_stop} of the open block, if one is open."""
        if self.open_type is not None:
            out.append({"type": "content_block_stop", "index": self.open_index})
            self.open_type = None

    def finish(
        self,
        out: list[ir.StreamEvent],
        stop_reason: str,
        usage: ir.Usage,
        *,
        stop_sequence: str | None = None,
        stop_details: dict[str, Any] | None = None,
    ) -> None:
        """Close the open block, then C{message_delta} (stop reason, usage) and C{message_stop}: the end."""
        self._check_live()
        self.close(out)
        delta: ir.MessageDeltaBody = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
        if stop_details is not None:
            delta["stop_details"] = stop_details
        out.append({"type": "message_delta", "delta": delta, "usage": usage})
        out.append({"type": "message_stop"})
        self.ended = True

    def fail(self, out: list[ir.StreamEvent], error: ir.ErrorEvent) -> None:
        """
        An C{error} event, which ends the stream where it stands (as Anthropic's own mid-stream errors do:
        open blocks are not closed, and it may come before C{message_start}).
        """
        if self.ended:
            raise StreamOrderError("the stream has ended")
        out.append(error)
        self.ended = True
        self.open_type = None  # left unclosed on the wire, and closed to any further delta
