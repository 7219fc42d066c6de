"""
A Gemini C{streamGenerateContent} stream as IR (Anthropic) stream events, with streamed function-call
arguments (C{partialArgs}) reassembled.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sapproxy.translate import ir
from sapproxy.translate.anthropic_stream import AnthropicStreamWriter
from sapproxy.translate.usage import Usage
from sapproxy.translate.wire.gemini.signatures import mark, signed_tool_use_id
from sapproxy.translate.wire.gemini.response import (
    MALFORMED, gemini_error_event, malformed_message, refusal_details, stop_reason, tool_use_id,
)

_PATH_TOKEN = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")


def _parse_json_path(path: str) -> list[str | int] | None:
    if not path.startswith("$"):
        return None
    keys: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            return None
        if m.group(1) is not None:
            keys.append(m.group(1))
        elif m.group(2) is not None:
            keys.append(int(m.group(2)))
        else:
            keys.append(m.group(3) if m.group(3) is not None else m.group(4))
        pos = m.end()
    return keys


def _container_for(key: str | int) -> Any:
    return [] if isinstance(key, int) else {}


def apply_partial_arg(args: dict[str, Any], partial: dict[str, Any]) -> None:
    """
    Apply one Vertex C{PartialArg} to the arguments object being rebuilt: strings at the same path are
    concatenated (long strings arrive in pieces), other values set.
    """
    keys = _parse_json_path(str(partial.get("jsonPath") or ""))
    if not keys:
        return
    if "stringValue" in partial:
        value: Any = partial.get("stringValue") or ""
        append = True
    elif "numberValue" in partial:
        value, append = partial.get("numberValue"), False
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
    elif "boolValue" in partial:
        value, append = bool(partial.get("boolValue")), False
    elif "nullValue" in partial:
        value, append = None, False
    else:
        return
    node: Any = args
    for key, following in zip(keys, keys[1:]):
        if isinstance(key, int):
            if not isinstance(node, list):
                return
            while len(node) <= key:
                node.append(None)
            if not isinstance(node[key], (dict, list)):
                node[key] = _container_for(following)
            node = node[key]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(key), (dict, list)):
                node[key] = _container_for(following)
            node = node[key]
    last = keys[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            return
        while len(node) <= last:
            node.append(None)
        current = node[last]
        node[last] = current + value if append and isinstance(current, str) else value
    else:
        if not isinstance(node, dict):
            return
        current = node.get(last)
        node[last] = current + value if append and isinstance(current, str) else value


class GeminiToAnthropicStream:
    """
    C{streamGenerateContent} chunks (one C{GenerateContentResponse} each) as Anthropic stream events.

    Text and C{thought: true} parts stream as text / thinking deltas; a C{thoughtSignature} becomes a
    C{signature_delta} (on the open thinking block, or on a signature-only thinking block of its own, see
    the module docstring).  Whole C{functionCall} parts become a tool_use block with one C{input_json_delta};
    Vertex's streamed calls (C{willContinue} + C{partialArgs} + empty C{functionCall{}} terminator) are
    rebuilt and sent as one C{input_json_delta} when the call completes.  C{message_delta} and
    C{message_stop} are sent by L{finish}, so usage reported on the last chunk is included.
    """

    def __init__(self, model: str, *, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Usage | None = None
        self._writer = AnthropicStreamWriter()
        self._calls = 0
        self._call_args: dict[str, Any] | None = None  # a streamed (partialArgs) call in progress
        self._finish_reason: str | None = None
        self._block_reason: str | None = None
        self._saw_tool_use = False
        self._pending_signatures: list[str] = []
        self._call_signature: str | None = None

    # -- helpers

    def _start(self, out: list[ir.StreamEvent]) -> None:
        if self._writer.started:
            return
        usage = (self.usage or Usage()).to_anthropic()
        usage["output_tokens"] = 0
        self._writer.start(out, self.message_id, self.model, usage)

    def _close(self, out: list[ir.StreamEvent]) -> None:
        writer = self._writer
        if writer.open_type is None:
            return
        if writer.open_type == "tool_use" and self._call_args is not None:
            writer.delta(out, {"type": "input_json_delta", "partial_json": json.dumps(self._call_args, ensure_ascii=False)})
            self._call_args = None
        writer.close(out)
        if self._pending_signatures:
            pending, self._pending_signatures = self._pending_signatures, []
            for sig in pending:
                self._signature(out, sig)

    def _open_block(self, out: list[ir.StreamEvent], block: ir.ContentBlock) -> None:
        self._close(out)
        self._writer.open(out, block)

    def _signature(self, out: list[ir.StreamEvent], sig: str) -> None:
        if self._writer.open_type != "thinking":
            self._open_block(out, {"type": "thinking", "thinking": "", "signature": ""})
        self._writer.delta(out, {"type": "signature_delta", "signature": mark(sig)})
        self._close(out)

    def _start_call(self, out: list[ir.StreamEvent], call: dict[str, Any]) -> None:
        self._open_block(
            out,
            {
                "type": "tool_use",
                "id": signed_tool_use_id(tool_use_id(self.message_id, self._calls), self._call_signature),
                "name": str(call.get("name") or ""),
                "input": {},
            },
        )
        self._calls += 1
        self._saw_tool_use = True

    def _function_call(self, out: list[ir.StreamEvent], call: dict[str, Any]) -> None:
        name = call.get("name")
        if name:
            self._start_call(out, call)
            args = call.get("args")
            self._call_args = dict(args) if isinstance(args, dict) else {}
        elif self._writer.open_type != "tool_use" or self._call_args is None:
            # A continuation or terminator with no call in progress: nothing to attach it to.
            return
        partials = call.get("partialArgs")
        if isinstance(partials, list):
            for partial in partials:
                if isinstance(partial, dict):
                    apply_partial_arg(self._call_args, partial)
        if call.get("willContinue") is not True:
            # A whole call, or the end (often the empty functionCall{} terminator) of a streamed one.
            self._close(out)

    def _part(self, out: list[ir.StreamEvent], part: dict[str, Any]) -> None:
        sig = part.get("thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        if part.get("thought") is True:
            text = part.get("text")
            if self._writer.open_type != "thinking":
                self._open_block(out, {"type": "thinking", "thinking": "", "signature": ""})
            if isinstance(text, str) and text:
                self._writer.delta(out, {"type": "thinking_delta", "thinking": text})
            if sig:
                self._signature(out, sig)
            return
        call = part.get("functionCall")
        if isinstance(call, dict):
            if sig:
                if call.get("name") or self._writer.open_type != "tool_use":
                    self._signature(out, sig)
                else:
                    # A signature on the continuation of a streamed call: sent once the call is complete.
                    self._pending_signatures.append(sig)
            self._call_signature = sig if call.get("name") else None  # also in the call's id (signatures.py)
            self._function_call(out, call)
            self._call_signature = None
            return
        if sig:
            self._signature(out, sig)
        text = part.get("text")
        if isinstance(text, str) and text:
            if self._writer.open_type != "text":
                self._open_block(out, {"type": "text", "text": ""})
            self._writer.text(out, text)

    # -- the state machine

    def feed(self, chunk: dict[str, Any]) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._writer.ended:
            return out
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict) and ("promptTokenCount" in meta or "candidatesTokenCount" in meta):
            found = Usage.from_gemini(meta)
            self.usage = found if self.usage is None else self.usage.merged(found)
        self._start(out)
        error = chunk.get("error")
        if isinstance(error, dict) and not chunk.get("candidates"):
            # Vertex / Gemini report a failure mid-stream as a chunk holding only a Google error object.
            self._close(out)
            self._writer.fail(out, gemini_error_event(error))
            return out
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self._block_reason = str(feedback["blockReason"])
        candidates = chunk.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
            candidate = candidates[0]
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if isinstance(parts, list):
                for part in parts:
                    if isinstance(part, dict):
                        self._part(out, part)
            if candidate.get("finishReason"):
                self._finish_reason = str(candidate["finishReason"])
                self._close(out)
        return out

    def finish(self) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._writer.ended:
            return out
        self._start(out)
        self._close(out)
        if self._finish_reason in MALFORMED and not self._saw_tool_use:
            # No usable answer: an error, as a whole response gets (a 502), not an empty "success".
            self._writer.fail(out, {"type": "error", "error": {"type": "api_error",
                                                               "message": malformed_message(self._finish_reason)}})
            return out
        if self._block_reason and self._finish_reason is None:
            reason = "refusal"
            details: dict[str, Any] | None = refusal_details(self._block_reason)
        else:
            reason = stop_reason(self._finish_reason, self._saw_tool_use)
            details = refusal_details(str(self._finish_reason)) if reason == "refusal" else None
        self._writer.finish(out, reason, (self.usage or Usage()).to_anthropic(), stop_details=details)
        return out
