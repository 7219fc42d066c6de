"""
The official C{openai} SDK's Responses API against a real gateway daemon in front of a real simulator process:
C{responses.create} and C{responses.stream} for GPT (the deployment's own /responses), Claude and Gemini (through
the IR), a tool round trip, C{previous_response_id}, retrieve and delete, and the usage rows they leave.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import openai
import pytest
from daemon_harness import TOKEN, Stack, running_stack

pytestmark = pytest.mark.integration

MODELS = ["gpt-4.1", "gpt-5", "anthropic--claude-4.5-sonnet", "gemini-2.5-pro"]
SHELL = {"type": "function", "name": "shell", "description": "Run a command",
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                        "required": ["command"]}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("responses-sdk")) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base}/v1", api_key=TOKEN, max_retries=0, timeout=30)


@pytest.mark.parametrize("model", MODELS)
def test_int_responses_create_and_stream_agree(client: openai.OpenAI, model: str) -> None:
    whole = client.responses.create(model=model, input="hello there", instructions="Be brief.")
    assert whole.object == "response" and whole.status == "completed" and whole.model == model
    assert "hello there" in whole.output_text
    assert whole.usage is not None and whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    assert whole.usage.total_tokens == whole.usage.input_tokens + whole.usage.output_tokens
    with client.responses.stream(model=model, input="hello there", instructions="Be brief.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == whole.output_text
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_int_responses_tool_round_trip_with_previous_response_id(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="list my files", tools=[SHELL])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "shell"
    assert isinstance(json.loads(calls[0].arguments)["command"], list)
    with client.responses.stream(model=model, previous_response_id=first.id, tools=[SHELL],  # type: ignore[list-item]
                                 input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                         "output": "README.md setup.py"}]) as stream:
        for _ in stream:
            pass
        second = stream.get_final_response()
    assert second.previous_response_id == first.id
    assert "tool said" in second.output_text and "README.md setup.py" in second.output_text
    # A third turn continues from the second: the whole conversation is the gateway's to rebuild.
    third = client.responses.create(model=model, previous_response_id=second.id, input="thanks")
    assert third.status == "completed" and "thanks" in third.output_text


def test_int_responses_retrieve_delete_and_not_found(client: openai.OpenAI) -> None:
    made = client.responses.create(model="anthropic--claude-4.5-sonnet", input="keep me")
    got = client.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    listed = client.responses.input_items.list(made.id, order="asc")
    assert [getattr(item, "role", None) for item in listed.data] == ["user"]
    deleted = client.responses.delete(made.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve(made.id)
    assert "not found" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="x", previous_response_id="resp_unknown")
    not_kept = client.responses.create(model="gpt-4.1", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(not_kept.id)


def test_int_responses_codex_tools_reach_gpt_as_functions(client: openai.OpenAI, stack: Stack) -> None:
    tools: list[Any] = [{"type": "custom", "name": "apply_patch", "description": "Edit files"},
                        {"type": "web_search"}, SHELL]
    text = 'patch it #sim{"tool_name": "apply_patch", "tool_args": {"input": "*** Begin Patch\\n*** End Patch"}}'
    with client.responses.stream(model="gpt-5", input=text, tools=tools,
                                 include=["reasoning.encrypted_content"]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "custom_tool_call"]
    assert call.name == "apply_patch" and call.input == "*** Begin Patch\n*** End Patch"
    assert "response.custom_tool_call_input.done" in [e.type for e in events]
    sent = [r for r in stack.sim.inference_requests() if r["path"].endswith("/responses")]
    assert sent and {t["type"] for t in sent[-1]["body"]["tools"]} == {"function"}
    assert stack.gateway.log_text().count("web_search") >= 1  # the one line naming the dropped tool


def test_int_responses_usage_rows(client: openai.OpenAI, stack: Stack) -> None:
    before = len(stack.gateway.usage_rows("endpoint = '/v1/responses'"))
    client.responses.create(model="gemini-2.5-pro", input="count me")
    with client.responses.stream(model="gpt-4.1", input="count me too") as stream:
        for _ in stream:
            pass
    rows = stack.gateway.wait_usage_rows(before + 2, "endpoint = '/v1/responses'")
    last = rows[-2:]
    assert {r["client"] if "client" in r else r["dialect"] for r in last} == {"responses"}
    assert all(r["status"] == 200 and r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in last)
    assert sorted(bool(r["stream"]) for r in last) == [False, True]
