"""
GPT pass-through edits the upstream's own JSON (the model name, an unasked-for C{usage: null}) instead of
serialising each chunk again: what the client gets must parse to exactly what the dict path would send, on
the recorded Azure and OpenAI streams and on chunks built to confuse a byte edit.

The pipeline's lane (L{OpenAIPassthrough.feed_raw}: each event's bytes read by a typed decoder, edited and
framed in one step) must send byte for byte what the keep-bytes dict path sends, however the stream is cut
into reads, and whatever the chunks hold (errors, odd shapes, text that is not UTF-8, usage where the client
did not ask for it).
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
    feed_raw = None


class NoLane(OpenAIPassthrough):
    """The keep-bytes dict path without the lane: every event decoded, parsed to a dict, edited, encoded."""

    feed_raw = None


def run(body: bytes, model: str, wants_usage: bool, keep_bytes: bool, lane: bool = True,
        reads: list[int] | None = None) -> tuple[list[bytes], Any]:
    kind = (OpenAIPassthrough if lane else NoLane) if keep_bytes else Reserialising
    pipeline = StreamPipeline(SSEJsonSource(), [kind(model, client_wants_usage=wants_usage)], encode_data)
    assert (pipeline._source._parse is parse_keeping_bytes) is keep_bytes
    assert (pipeline._lane is not None) is (keep_bytes and lane)
    out: list[bytes] = []
    at = 0
    for cut in sorted(reads or ()):
        out += pipeline.feed(body[at:cut])
        at = max(at, cut)
    out += pipeline.feed(body[at:]) + pipeline.finish()
    return out, (pipeline.usage, pipeline.output_chars, pipeline.error)


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
            assert (fast, fast_acct) == run(body, "gpt-4.1", wants_usage, True, lane=False)
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
    assert (fast, fast_acct) == run(body, client, wants_usage, True, lane=False)
    assert events(fast) == events(slow)
    assert fast_acct == slow_acct


def chunk_lines() -> st.SearchStrategy[bytes]:
    """
    One SSE data line's bytes: chat chunks of every shape the lane takes or must leave to the dict path,
    written compact or spaced, and now and then not JSON, not UTF-8 or not a chunk at all.
    """
    text = st.one_of(anything, st.none(), st.integers(0, 3))
    delta = st.fixed_dictionaries({}, optional={
        "content": text, "reasoning_content": text, "role": st.just("assistant"),
        "tool_calls": st.lists(st.fixed_dictionaries({"index": st.integers(0, 2)}, optional={
            "function": st.fixed_dictionaries({}, optional={"arguments": text, "name": anything})}), max_size=2)})
    choice = st.fixed_dictionaries({"index": st.just(0)}, optional={
        "delta": st.one_of(delta, st.none(), st.just("x")), "finish_reason": st.sampled_from([None, "stop"]),
        "content_filter_results": st.just({})})
    usage = st.one_of(st.none(), st.fixed_dictionaries({"prompt_tokens": st.integers(0, 9),
                                                        "completion_tokens": st.integers(0, 9)}))
    chunk = st.fixed_dictionaries({"id": st.just("c")}, optional={
        "model": st.one_of(st.sampled_from(["gpt-up", "gpt-4.1", 'q"x', "é"]), st.none(), st.integers()),
        "choices": st.one_of(st.lists(choice, max_size=2), st.none(), st.just({})),
        "usage": usage, "error": st.just({"message": "boom", "type": "server_error"}),
        "delta": st.just("top"), "obfuscation": anything})
    encoded = st.builds(lambda c, spaced, ascii_: json.dumps(
        c, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=ascii_).encode(),
        chunk, st.booleans(), st.booleans())
    odd = st.sampled_from([b"", b" ", b"[DONE]", b"{", b"[1]", b'{"model":"gpt-up","choices":[],"x":"\xff\xfe"}',
                           b'{"model":"gpt-up","choices":[{"delta":{"content":"\xc3\xa9\xff"}}]}',
                           b'{"model":"gpt-up","choices":[{"delta":{"content":"\\ud800"}}]}',
                           b'{"model":"gpt-up","choices":[],"usage":{"prompt_tokens":NaN}}'])
    return st.one_of(encoded, encoded, encoded, odd)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(chunk_lines(), min_size=1, max_size=6), model=st.sampled_from(["gpt-4.1", "gpt-up"]),
       wants_usage=st.booleans(), reads=st.lists(st.integers(0, 2000), max_size=4), crlf=st.booleans())
def test_the_lane_writes_what_the_dict_path_writes(lines: list[bytes], model: str, wants_usage: bool,
                                                  reads: list[int], crlf: bool) -> None:
    """
    Byte for byte, with the same usage, output characters and error, cut into reads anywhere; a chunk the
    dict path refuses (not JSON, an item that is not a dict) fails both alike.
    """
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    body = b"".join(b"data: " + line + sep for line in lines) + b"data: [DONE]" + sep

    def outcome(lane: bool) -> Any:
        try:
            return run(body, model, wants_usage, True, lane=lane, reads=reads)
        except Exception as e:
            return type(e).__name__

    assert outcome(True) == outcome(False)

