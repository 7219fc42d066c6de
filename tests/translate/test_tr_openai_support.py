"""
Helpers shared by the OpenAI translation tests: fixture readers, SDK schema checks and accumulators.

(Named C{test_*} only so that it sits with the files it serves; it holds a few self-tests of the readers.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import TypeAdapter

from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from conftest import FIXTURES
from sapproxy.translate.framing.sse import SSEDecoder

_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


# ---------------------------------------------------------------------------------------------- readers


def anthropic_events(path: Path) -> list[dict[str, Any]]:
    """The event payloads of an Anthropic SSE (C{.txt}) or JSON-per-line (C{.chunks.txt}) fixture."""
    raw = path.read_bytes()
    if path.name.endswith(".chunks.txt"):
        return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.finish()
    return [event.json() for event in events]


def _yaml_scalar_after(lines: list[str], start: int) -> str:
    """The YAML string value of the C{body:} key on C{lines[start]} (block scalar or double-quoted)."""
    line = lines[start]
    key_indent = len(line) - len(line.lstrip(" "))
    value = line.split("body:", 1)[1].strip()
    if value.startswith('"'):
        return json.loads(value)  # go-vcr writes single-line double-quoted strings with JSON-compatible escapes
    if not value.startswith("|"):
        return value
    chomp = value[1:2]
    body: list[str] = []
    indent: int | None = None
    for raw in lines[start + 1 :]:
        if raw.strip() and len(raw) - len(raw.lstrip(" ")) <= key_indent:
            break
        if indent is None and raw.strip():
            indent = len(raw) - len(raw.lstrip(" "))
        body.append(raw[indent:] if indent is not None and raw.strip() else "")
    text = "\n".join(body) + "\n"
    if chomp == "-":
        return text.rstrip("\n")
    if chomp == "+":
        return text
    return text.rstrip("\n") + "\n"


def vcr_bodies(path: Path) -> tuple[str, str]:
    """(request body, response body) of the first interaction of a go-vcr v2 cassette."""
    lines = path.read_text("utf-8").split("\n")
    request = response = None
    section = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == "request:":
            section = "request"
        elif stripped == "response:":
            section = "response"
        elif stripped.startswith("body:"):
            if section == "request" and request is None:
                request = _yaml_scalar_after(lines, i)
            elif section == "response" and response is None:
                response = _yaml_scalar_after(lines, i)
    assert request is not None and response is not None, path
    return request, response


def openai_sse_chunks(body: str) -> list[dict[str, Any]]:
    """The chunk payloads of an OpenAI SSE body, without the C{[DONE]} sentinel."""
    decoder = SSEDecoder()
    events = decoder.feed(body.encode("utf-8")) + decoder.finish()
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


def openai_chunks(path: Path) -> list[dict[str, Any]]:
    """The chunks of an OpenAI JSON-per-line fixture or streaming VCR cassette."""
    if path.name.endswith(".yaml"):
        return openai_sse_chunks(vcr_bodies(path)[1])
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------- schemas


def check_chunks(chunks: Iterable[dict[str, Any]]) -> None:
    """Every payload is a valid C{chat.completion.chunk} (or an error payload), with one id and created."""
    ids = set()
    for chunk in chunks:
        if "error" in chunk:
            assert set(chunk) == {"error"} and isinstance(chunk["error"]["message"], str)
            continue
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk"
        ids.add((chunk["id"], chunk["created"], chunk["model"]))
    assert len(ids) <= 1, ids


def check_completion(completion: dict[str, Any]) -> None:
    ChatCompletion.model_validate(completion)


def check_events(events: Iterable[dict[str, Any]]) -> None:
    """Every event validates, and the sequence is a well-formed Anthropic stream."""
    events = list(events)
    open_blocks: set[int] = set()
    seen = set()
    for event in events:
        _EVENT_ADAPTER.validate_python(event) if event["type"] != "error" else None
        kind = event["type"]
        if kind == "content_block_start":
            assert event["index"] not in seen, "block index reused"
            seen.add(event["index"])
            open_blocks.add(event["index"])
        elif kind == "content_block_stop":
            assert event["index"] in open_blocks
            open_blocks.discard(event["index"])
        elif kind == "content_block_delta":
            assert event["index"] in seen
    kinds = [e["type"] for e in events]
    if "error" in kinds:
        assert kinds[-1] == "error"
        return
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert not open_blocks
    if seen:
        assert sorted(seen) == list(range(len(seen)))


def check_message(message: dict[str, Any]) -> None:
    Message.model_validate(message)


# ---------------------------------------------------------------------------------------------- accumulators


def sdk_final_completion(chunks: Iterable[dict[str, Any]]) -> Any:
    """The openai SDK's own accumulation of a stream (what C{client.chat.completions.stream} returns)."""
    from openai.lib.streaming.chat import ChatCompletionStreamState

    state: Any = ChatCompletionStreamState()
    for chunk in chunks:
        if "error" not in chunk:
            state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    # (get_final_completion() would raise on finish_reason "length"; the snapshot is the same accumulation.)
    return state.current_completion_snapshot


def sdk_final_message(events: Iterable[dict[str, Any]]) -> Any:
    """The anthropic SDK's own accumulation of a stream (what C{MessageStream.get_final_message} returns)."""
    from anthropic.lib.streaming._messages import accumulate_event

    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] != "error":
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)  # type: ignore[arg-type]
    return snapshot



def accumulate_openai(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What an OpenAI client would make of a stream: text, reasoning, tool calls, finish, usage."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    thinking_blocks: list[dict[str, Any]] = []
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
            if delta.get("reasoning_content"):
                reasoning.append(delta["reasoning_content"])
            thinking_blocks.extend(delta.get("thinking_blocks") or ())
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["name"] += function["name"]
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return {
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish,
        "usage": usage,
        "thinking_blocks": thinking_blocks,
    }


def accumulate_anthropic(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What an Anthropic client would make of a stream, block by block (raw JSON kept for tool input)."""
    blocks: dict[int, dict[str, Any]] = {}
    stop_reason = None
    usage: dict[str, Any] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            usage.update(event["message"].get("usage") or {})
        elif kind == "content_block_start":
            block = dict(event["content_block"])
            block.setdefault("partial_json", "")
            block.setdefault("signature", block.get("signature") or "")
            blocks[event["index"]] = block
        elif kind == "content_block_delta":
            block = blocks.setdefault(event["index"], {"type": "text", "text": "", "partial_json": "", "signature": ""})
            delta = event["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["partial_json"] += delta["partial_json"]
        elif kind == "message_delta":
            stop_reason = event["delta"].get("stop_reason") or stop_reason
            usage.update(event.get("usage") or {})
    ordered = [blocks[i] for i in sorted(blocks)]
    return {
        "text": "".join(b.get("text", "") for b in ordered if b["type"] == "text"),
        "thinking": "".join(b.get("thinking", "") for b in ordered if b["type"] == "thinking"),
        "signatures": [b["signature"] for b in ordered if b["type"] == "thinking"],
        "tool_calls": [
            {"id": b["id"], "name": b["name"], "arguments": b["partial_json"]} for b in ordered if b["type"] == "tool_use"
        ],
        "stop_reason": stop_reason,
        "usage": usage,
    }


# ---------------------------------------------------------------------------------------------- self-tests


def test_vcr_reader_block_scalar() -> None:
    path = FIXTURES / "openai" / "chat-streaming-detailed-usage.yaml"
    if not path.exists():
        from conftest import need

        need(False, "fixtures absent")
    request, response = vcr_bodies(path)
    assert json.loads(request)["stream_options"] == {"include_usage": True}
    assert response.startswith("data: {") and response.endswith("data: [DONE]\n\n")
    assert len(openai_sse_chunks(response)) == 3


def test_vcr_reader_quoted() -> None:
    path = FIXTURES / "openai" / "chat-reasoning.yaml"
    if not path.exists():
        from conftest import need

        need(False, "fixtures absent")
    request, response = vcr_bodies(path)
    assert json.loads(request)["model"] == "gpt-5-nano"
    assert json.loads(response)["usage"]["completion_tokens_details"]["reasoning_tokens"] == 192
