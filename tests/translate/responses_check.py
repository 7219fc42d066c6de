"""
A strict client's view of an OpenAI Responses API stream, checked against the recorded streams first (so the
rules here are OpenAI's, not ours) and then applied to what the gateway produces.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import ValidationError

def _event_models() -> dict[str, Any]:
    union = typing.get_args(ResponseStreamEvent)[0]
    return {model.model_fields["type"].annotation.__args__[0]: model for model in typing.get_args(union)}


#: event type -> the SDK's model of it (one model's errors are readable; the union's 200 are not)
_MODELS = _event_models()
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def gapless(stream: list[dict[str, Any]]) -> bool:
    """Whether a recorded stream has every event (its sequence numbers, where present, have no gap)."""
    numbers = [e.get("sequence_number") for e in stream]
    return None in numbers or numbers == list(range(len(stream)))


def recorded_streams(path: Path) -> list[list[dict[str, Any]]]:
    """The streams of a JSON-per-line Responses fixture, split at each C{response.created}."""
    streams: list[list[dict[str, Any]]] = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event["type"] == "response.created" or not streams:
            streams.append([])
        streams[-1].append(event)
    return streams


def _validate(model: Any, value: dict[str, Any], recorded: bool) -> None:
    """
    Validate against the SDK's model; a recording may lack fields the (newer) SDK lists as required (the SDK
    itself never validates what it reads, so clients do not mind), but nothing may be of the wrong shape.
    """
    try:
        model.model_validate(value)
    except ValidationError as e:
        # OpenAI itself sends error codes (insufficient_quota) that the SDK's enum lacks; the gateway may not.
        errors = [err for err in e.errors() if not (recorded and (err["type"] == "missing" or err["loc"][-2:] == ("error", "code")))]
        if errors:
            raise AssertionError(f"{model.__name__}: {errors}") from None


def check_stream(events: list[dict[str, Any]], *, sequence: bool = True, recorded: bool = False,
                 complete: bool = True) -> dict[str, Any]:
    """
    Check one Responses stream as a strict client would, and return its final response object.

    Every event is valid for the official SDK's types; sequence numbers count from 0 without a gap;
    C{response.created} then C{response.in_progress} open it and exactly one terminal event ends it; every
    item is added before its events and done after them, with done texts (output text, arguments,
    reasoning summaries, custom tool input) equal to their deltas joined; the terminal response lists
    the items that were done, in output index order.

    @param recorded: a recording, which may lack fields the newer SDK requires (see L{_validate}).
    @param complete: False for a recording that left deltas out (its sequence numbers have gaps): done
        texts are then not compared with the deltas.
    """
    assert events, "an empty stream"
    for n, event in enumerate(events):
        if event["type"] == "error":  # recorded: {"error": {...}}; the SDK's type has its fields at the top
            continue
        _validate(_MODELS[event["type"]], event, recorded)
        if sequence:
            if complete:
                assert event.get("sequence_number") == n, (n, event.get("sequence_number"), event["type"])
            else:
                assert n == 0 or event["sequence_number"] > events[n - 1]["sequence_number"]
    assert events[0]["type"] == "response.created"
    assert events[1]["type"] == "response.in_progress"
    assert events[0]["response"]["status"] == "in_progress"
    terminal = [e for e in events if e["type"] in TERMINAL]
    assert len(terminal) == 1 and events[-1] is terminal[0], [e["type"] for e in events[-3:]]
    open_items: dict[int, dict[str, Any]] = {}
    done_items: dict[int, dict[str, Any]] = {}
    texts: dict[tuple[str, Any], str] = {}

    def item_of(event: dict[str, Any]) -> dict[str, Any]:
        index = event["output_index"]
        assert index in open_items, f"{event['type']} for output {index}, which is not open"
        item = open_items[index]
        if "item_id" in event:
            assert event["item_id"] == item["id"], (event["item_id"], item["id"])
        return item

    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            index = event["output_index"]
            assert index not in open_items and index not in done_items, f"output {index} added twice"
            open_items[index] = event["item"]
        elif kind == "response.output_item.done":
            item = item_of(event)
            done = event["item"]
            assert done["id"] == item["id"] and done["type"] == item["type"]
            if done["type"] == "message":
                joined = "".join(p.get("text", "") for p in done["content"])
                assert not complete or joined == texts.get((item["id"], "text"), joined)
            if done["type"] == "function_call":
                assert done["arguments"] == texts.get((item["id"], "arguments"), done["arguments"])
            if done["type"] == "custom_tool_call":
                assert done["input"] == texts.get((item["id"], "input"), done["input"])
            if done["type"] == "reasoning" and (item["id"], "summary") in texts:
                assert "".join(p["text"] for p in done["summary"]) == texts[(item["id"], "summary")]
            done_items[event["output_index"]] = done
            del open_items[event["output_index"]]
        elif kind == "response.output_text.delta":
            item = item_of(event)
            texts[(item["id"], "text")] = texts.get((item["id"], "text"), "") + event["delta"]
        elif kind == "response.output_text.done":
            item = item_of(event)
            assert not complete or event["text"] == texts.get((item["id"], "text"), ""), "output_text.done differs from its deltas"
        elif kind == "response.function_call_arguments.delta":
            item = item_of(event)
            texts[(item["id"], "arguments")] = texts.get((item["id"], "arguments"), "") + event["delta"]
        elif kind == "response.function_call_arguments.done":
            item = item_of(event)
            assert event["arguments"] == texts.get((item["id"], "arguments"), "")
        elif kind == "response.custom_tool_call_input.delta":
            item = item_of(event)
            texts[(item["id"], "input")] = texts.get((item["id"], "input"), "") + event["delta"]
        elif kind == "response.custom_tool_call_input.done":
            item = item_of(event)
            assert event["input"] == texts.get((item["id"], "input"), "")
        elif kind == "response.reasoning_summary_text.delta":
            item = item_of(event)
            texts[(item["id"], "summary")] = texts.get((item["id"], "summary"), "") + event["delta"]
        elif kind == "response.reasoning_summary_text.done":
            item = item_of(event)
            assert event["text"] == texts.get((item["id"], "summary"), "")
        elif kind in ("response.content_part.added", "response.content_part.done",
                      "response.reasoning_summary_part.added", "response.reasoning_summary_part.done"):
            item_of(event)
        elif kind == "error":
            pass
        else:
            raise AssertionError(f"unexpected event {kind}")
    final = events[-1]["response"]
    _validate(Response, final, recorded)
    if events[-1]["type"] != "response.failed":
        assert not open_items, f"items never done: {sorted(open_items)}"
        assert [i["id"] for i in final["output"]] == [done_items[k]["id"] for k in sorted(done_items)]
        usage = final["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    else:
        assert final["status"] == "failed" and final["error"]["message"]
    return final
