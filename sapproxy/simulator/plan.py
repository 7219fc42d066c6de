"""
The dialect-neutral plan of one reply: which blocks (thinking, text, tool calls) it has, why it stops and
its token counts. Bedrock (invoke and converse) and Vertex render the same plan in their own shapes, so
a request gives the same content whichever way it is streamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from attrs import frozen

from .directives import Directive
from .textgen import (
    count_reply_tokens, count_tokens, reply_piece, thinking_signature, thinking_text, tool_arguments_json,
)

BlockKind = Literal["thinking", "text", "tool"]
Stop = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence"]


@frozen
class ToolSpec:
    """A tool the request offers: its name and JSON schema for the arguments."""

    name: str
    schema: Any


@frozen
class Block:
    """One content block of the reply."""

    kind: BlockKind
    text: str = ""          # thinking text
    signature: str = ""     # thinking signature
    tool_name: str = ""
    tool_args: str = ""     # JSON text
    tool_index: int = 0
    user_text: str = ""     # text blocks are generated piecewise from these two
    directive: Directive = Directive()

    def pieces(self) -> Iterator[str]:
        """A text block's deltas, generated lazily so huge replies never sit in memory."""
        for i in range(self.directive.events):
            yield reply_piece(self.user_text, self.directive, i)

    def full_text(self) -> str:
        return "".join(self.pieces())


@frozen
class Plan:
    blocks: Sequence[Block]
    stop: Stop
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int


def make_plan(
    user_text: str,
    directive: Directive,
    *,
    thinking: bool,
    tools: Sequence[ToolSpec],
    forced_tool: str | None = None,
    tool_result: str | None = None,
    stop_sequences: Sequence[str] = (),
) -> Plan:
    """
    Decide the reply: a thinking block when asked, then tool calls when tools are offered and the last turn
    is not a tool result, else a text echoing the user (or quoting the tool result).
    """
    blocks: list[Block] = []
    thinking_tokens = 0
    if thinking or directive.thinking:
        text = thinking_text(user_text)
        blocks.append(Block("thinking", text=text, signature=thinking_signature(text)))
        thinking_tokens = count_tokens(text)
    output = thinking_tokens
    if tools and tool_result is None:
        chosen = [t for t in tools if t.name == forced_tool] or list(tools)
        chosen = [t for t in chosen if t.name == directive.tool_name] or chosen
        n = directive.tool_calls if directive.tool_calls is not None else 1
        for i in range(max(1, n)):
            tool = chosen[i % len(chosen)]
            args = directive.tool_args if directive.tool_args is not None else tool_arguments_json(tool.schema)
            blocks.append(Block("tool", tool_name=tool.name, tool_args=args, tool_index=i))
            output += count_tokens(args) + 5
        return Plan(blocks, "tool_use", None, output, thinking_tokens)
    text_user = ("tool said " + tool_result) if tool_result is not None else user_text
    blocks.append(Block("text", user_text=text_user, directive=directive))
    output += count_reply_tokens(text_user, directive)
    stop: Stop = "end_turn"
    stop_sequence = None
    if directive.stop == "max_tokens":
        stop = "max_tokens"
    elif directive.stop == "stop_sequence":
        stop = "stop_sequence"
        stop_sequence = stop_sequences[0] if stop_sequences else "STOP"
    return Plan(blocks, stop, stop_sequence, output, thinking_tokens)
