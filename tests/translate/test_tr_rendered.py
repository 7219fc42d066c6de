"""
Content deltas rendered from per-stream templates (L{sapproxy.translate.framing.sse.Rendered}) must be, byte for byte,
what serialising the event would give, whatever the text, model name, ids and block numbers are.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sapproxy.translate.client.openai_chat import AnthropicToOpenAIStream
from sapproxy.translate.wire.openai_chat import OpenAIToAnthropicStream
from sapproxy.translate.framing.sse import Rendered, encode_data, encode_event, json_text, split_template

#: Any text a model or a client can send, quotes, backslashes, control characters and astral planes included.
anything = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


def plain(payload: dict[str, Any]) -> dict[str, Any]:
    """The event as an ordinary dict: what the encoders serialise when there is no template."""
    return json.loads(json.dumps(payload))


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(anything.filter(bool), min_size=1, max_size=5), model=anything, suffix=anything,
       include_usage=st.booleans(), created=st.integers(0, 2**40))
def test_openai_chunks_from_templates_are_the_serialised_chunks(texts: list[str], model: str, suffix: str,
                                                                include_usage: bool, created: int) -> None:
    stream = AnthropicToOpenAIStream(model, completion_id="chatcmpl-" + suffix, created=created,
                                     include_usage=include_usage)
    events = [{"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": t}}
               for t in texts]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}]
    events += [{"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": t}} for t in texts]
    chunks = [chunk for event in events for chunk in stream.feed(event)]
    rendered = [chunk for chunk in chunks if type(chunk) is Rendered]
    assert len(rendered) == 2 * len(texts)  # every content delta, thinking and text
    for chunk in chunks:
        assert encode_data(chunk) == b"data: " + json_text(plain(chunk)) + b"\n\n"
    assert [c["choices"][0]["delta"] for c in rendered] == \
        [{"reasoning_content": t} for t in texts] + [{"content": t} for t in texts]


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(anything.filter(bool), min_size=1, max_size=4), blocks=st.integers(1, 3))
def test_anthropic_text_deltas_from_templates_are_the_serialised_events(texts: list[str], blocks: int) -> None:
    stream = OpenAIToAnthropicStream("gpt-4.1", message_id="msg_1")
    events: list[dict[str, Any]] = []
    for block in range(blocks):
        # Reasoning then text opens a new block each time: the template must follow the block index.
        events += stream.feed({"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]})
        for t in texts:
            events += stream.feed({"id": "c", "choices": [{"index": 0, "delta": {"content": t}}]})
    deltas = [e for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"]
    assert len(deltas) == blocks * len(texts) and all(type(e) is Rendered for e in deltas)
    assert sorted({e["index"] for e in deltas}) == [2 * b + 1 for b in range(blocks)]
    for event in events:
        name = event["type"].encode()
        assert encode_event(event) == b"event: " + name + b"\ndata: " + json_text(plain(event)) + b"\n\n"


def test_a_template_that_does_not_fit_is_not_used() -> None:
    assert split_template(b'{"a":{"t":""}}', b'""', b"}}") == b'{"a":{"t":'
    assert split_template(b'{"a":{"t":""},"x":1}', b'""', b"}}") is None
