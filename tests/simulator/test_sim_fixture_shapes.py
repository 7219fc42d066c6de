"""The simulator's events have the same keys, in the same event order, as the recorded provider streams."""

from __future__ import annotations

import json
from typing import Any

from conftest import fixture_path
from simhelp import Driver, sse_events, sse_json


def lines(rel: str) -> list[Any]:
    return [json.loads(x) for x in fixture_path(rel).read_text().splitlines() if x.strip()]


def test_sim_azure_chunks_match_recorded_keys() -> None:
    recorded = lines("openai/azure-model-router.1.chunks.txt")
    d = Driver()
    mine = sse_json(d.post("d-gpt5", "chat/completions?api-version=2025-04-01-preview", {
        "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True}}).body)
    assert set(mine[0]) == set(recorded[0])
    assert mine[0]["prompt_filter_results"] == recorded[0]["prompt_filter_results"]
    ignore = {"obfuscation"}
    assert set(mine[1]) == set(recorded[1]) - ignore
    assert set(mine[1]["choices"][0]) == set(recorded[1]["choices"][0])
    assert mine[1]["choices"][0]["delta"] == recorded[1]["choices"][0]["delta"]
    assert mine[2]["choices"][0]["content_filter_results"] == recorded[2]["choices"][0]["content_filter_results"]
    assert mine[-2]["choices"][0] == {**recorded[-2]["choices"][0]}
    assert set(mine[-1]) == set(recorded[-1]) - ignore
    assert set(mine[-1]["usage"]) == set(recorded[-1]["usage"])
    assert set(mine[-1]["usage"]["completion_tokens_details"]) == \
        set(recorded[-1]["usage"]["completion_tokens_details"])


def test_sim_anthropic_sse_matches_recorded_sequence() -> None:
    recorded = sse_events(fixture_path("anthropic/basic_response.txt").read_bytes() + b"\n\n")
    d = Driver()
    mine = sse_events(d.post("d-haiku", "invoke-with-response-stream", {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "messages": [{"role": "user", "content": 'x #sim{"events": 3}'}]}).body)
    assert [n for n, _ in mine] == [n for n, _ in recorded]
    for (_, a), (_, b) in zip(mine, recorded):
        mine_obj, rec_obj = json.loads(a), json.loads(b)
        extra = {"amazon-bedrock-invocationMetrics"}
        assert set(mine_obj) - extra == set(rec_obj)
    assert mine[2][1] == recorded[2][1]  # the ping, byte for byte


def test_sim_converse_stream_matches_recorded_keys() -> None:
    recorded = lines("bedrock/bedrock-text.chunks.txt")
    d = Driver()
    # The recording's client (vercel/ai) asks for /stop_sequence, so its messageStop carries the field.
    mine = sse_json(d.post("d-sonnet", "converse-stream",
                           {"messages": [{"role": "user", "content": [{"text": 'x #sim{"events": 3}'}]}],
                            "additionalModelResponseFieldPaths": ["/stop_sequence"]}).body)
    assert [next(iter(e)) for e in mine] == [next(iter(e)) for e in recorded[:1]] + ["contentBlockDelta"] * 3 + \
        [next(iter(e)) for e in recorded[-3:]]
    assert mine[0] == recorded[0]
    assert mine[-2] == recorded[-2]  # messageStop with additionalModelResponseFields, end_turn
    assert set(mine[-1]["metadata"]) == set(recorded[-1]["metadata"])
    assert set(mine[-1]["metadata"]["usage"]) == set(recorded[-1]["metadata"]["usage"])


def test_sim_gemini_chunks_match_recorded_keys() -> None:
    recorded = lines("gemini/google-text.chunks.txt")
    d = Driver()
    mine = sse_json(d.post("d-gemini", "models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                           {"contents": [{"role": "user", "parts": [{"text": 'x #sim{"events": 3}'}]}]}).body)
    vertex_extra = {"createTime"}
    assert set(mine[-1]) - vertex_extra == set(recorded[-1])
    assert set(mine[-1]["candidates"][0]) - {"index"} == set(recorded[-1]["candidates"][0]) - {"index"}
    rec_usage = set(recorded[-1]["usageMetadata"])
    assert rec_usage <= set(mine[-1]["usageMetadata"])
