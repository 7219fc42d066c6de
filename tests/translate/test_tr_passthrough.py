"""
GPT pass-through edits the upstream's own JSON (the model name, an unasked-for C{usage: null}) instead of
serialising each chunk again: what the client gets must parse to exactly what the dict path would send, on
the recorded Azure and OpenAI streams and on chunks built to confuse a byte edit.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import fixture_path
from sapproxy.translate.framing.pipeline import SSEJsonSource, StreamPipeline
from sapproxy.translate.framing.sse import SSEDecoder, encode_data
from sapproxy.translate.wire.openai_passthrough import OpenAIPassthrough, parse_keeping_bytes

anything = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


class Reserialising(OpenAIPassthrough):
    """The dict path: the source keeps no bytes, so every chunk is serialised again."""

    keeps_bytes = None


def run(body: bytes, model: str, wants_usage: bool, keep_bytes: bool) -> tuple[list[bytes], Any]:
    translator = (OpenAIPassthrough if keep_bytes else Reserialising)(model, client_wants_usage=wants_usage)
    pipeline = StreamPipeline(SSEJsonSource(), [translator], encode_data)
    assert (pipeline._source._parse is parse_keeping_bytes) is keep_bytes
    out = pipeline.feed(body) + pipeline.finish()
    return out, (pipeline.usage, pipeline.output_chars)


def events(writes: list[bytes]) -> list[Any]:
    decoder = SSEDecoder()
    return [json.loads(e.data) for w in writes for e in decoder.feed(w)]


def sse(lines: list[str]) -> bytes:
    return b"".join(b"data: " + line.encode() + b"\n\n" for line in lines) + b"data: [DONE]\n\n"


def test_recorded_streams_pass_as_the_dict_path_sends_them() -> None:
    for name in ("openai/azure-model-router.1.chunks.txt", "openai/openai-text.chunks.txt"):
        body = sse([ln for ln in fixture_path(name).read_text().splitlines() if ln.strip()])
        for wants_usage in (False, True):
            fast, fast_acct = run(body, "gpt-4.1", wants_usage, True)
            slow, slow_acct = run(body, "gpt-4.1", wants_usage, False)
            assert events(fast) == events(slow)
            assert fast_acct == slow_acct and fast_acct[0] is not None
            assert all(b'"model":"gpt-4.1"' in w for w in fast)
            assert any(b"content_filter_results" in w or b"system_fingerprint" in w for w in fast)
            if not wants_usage:
                assert all(b'"usage"' not in w for w in fast)


@settings(max_examples=200, deadline=None)
@given(upstream=anything, client=anything, text=anything, wants_usage=st.booleans(), spaced=st.booleans(),
       nested=st.booleans(), usage_first=st.booleans())
def test_byte_edits_agree_with_reserialising(upstream: str, client: str, text: str, wants_usage: bool,
                                            spaced: bool, nested: bool, usage_first: bool) -> None:
    chunk: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 1}
    if usage_first:
        chunk["usage"] = None
    chunk["model"] = upstream
    chunk["choices"] = [{"index": 0, "delta": {"content": text + '"model":' + json.dumps(upstream)},
                         "finish_reason": None}]
    if nested:
        chunk["choices"][0]["extra"] = {"model": upstream}  # the same spelling twice: no byte edit
    if not usage_first:
        chunk["usage"] = None
    line = json.dumps(chunk, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=spaced)
    body = sse([line, json.dumps({"id": "c", "model": upstream, "choices": [],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})])
    fast, fast_acct = run(body, client, wants_usage, True)
    slow, slow_acct = run(body, client, wants_usage, False)
    assert events(fast) == events(slow)
    assert fast_acct == slow_acct
