"""
The benchmark's upstream sends streams in the recorded shapes (bench/shapes.py): each must carry what the
recorded stream carries, be the length asked for, and go through sapproxy's own pipeline for its case as a
real one would (so a benchmark case measures the path real traffic takes).  And the README generator keeps
the prose around the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import bench_module


@pytest.fixture(scope="module")
def shapes() -> Any:
    return bench_module("shapes")


@pytest.fixture(scope="module")
def cost() -> Any:
    return bench_module("pipeline_cost")


def _sse_json(frames: list[bytes]) -> list[Any]:
    out = []
    for frame in frames:
        data = frame.decode().strip()
        assert data.startswith("data: ")
        if data != "data: [DONE]":
            out.append(json.loads(data[6:]))
    return out


def test_azure_chunks_carry_the_recorded_fields(shapes: Any) -> None:
    events = _sse_json(shapes.stream("azure", 50, 0))
    assert events[0]["choices"] == [] and "prompt_filter_results" in events[0]
    content = events[2:-2]
    assert len(content) == 50
    for e in content:
        assert set(e) >= {"obfuscation", "system_fingerprint", "usage"}
        assert set(e["choices"][0]["content_filter_results"]) == {"hate", "self_harm", "sexual", "violence"}
        assert e["choices"][0]["logprobs"] is None and e["choices"][0]["delta"]["content"]
    assert events[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 64


def test_openai_and_long_text_shapes(shapes: Any) -> None:
    events = _sse_json(shapes.stream("openai", 50, 0))
    assert events[0]["choices"][0]["delta"]["refusal"] is None
    assert all(e["system_fingerprint"] == "fp_de604bd877" and "service_tier" in e for e in events)
    long = _sse_json(shapes.stream("azure", 50, 400))
    assert [len(e["choices"][0]["delta"]["content"]) for e in long[2:-2]] == [400] * 50
    assert len(_sse_json(shapes.stream("minimal", 50, 8))) == 53


@pytest.mark.parametrize("case, shape, writes", [
    ("gpt_passthrough", "azure", 52), ("gpt_passthrough", "openai", 52), ("gpt_passthrough", "minimal", 52),
    ("gpt_to_anthropic", "azure", 55), ("claude_to_openai", "anthropic", 52),
    ("converse_to_openai", "converse", 52), ("bedrock_converse", "converse_eventstream", 52),
    ("gemini_to_openai", "gemini", 53),
])
def test_each_shape_goes_through_sapproxy_as_a_real_stream(cost: Any, shapes: Any, case: str, shape: str,
                                                          writes: int) -> None:
    # Role chunk + 50 content chunks + finish chunk (+ the Anthropic framing events), nothing lost or failed.
    make = cost.sapproxy_pipeline(case)
    frames = shapes.stream(shape, 50, 0)
    assert cost.sapproxy_stream(make, frames) == writes
    assert cost.sapproxy_stream(make, [b"".join(frames)]) == writes
    pipeline = make()
    for frame in frames:
        pipeline.feed(frame)
    pipeline.finish()
    assert pipeline.usage is not None and pipeline.usage.completion_tokens > 0 and pipeline.error is None


def test_readme_section_is_replaced_between_its_markers() -> None:
    run = bench_module("run")
    readme = f"# x\n\n## Performance\n\nprose before\n{run.README_START}\nold\n{run.README_END}\nprose after\n"
    md = "# sapproxy benchmark\n\n- machine: m\n\n## Targets\n\n| a | b |\n"
    new = run.readme_with(readme, md)
    assert new.startswith("# x\n\n## Performance\n\nprose before\n")
    assert new.endswith(f"{run.README_END}\nprose after\n")
    assert "old" not in new and "### Targets" in new and "- machine: m" in new
    assert run.README_START in Path(run.README).read_text() and run.README_END in Path(run.README).read_text()
