"""
The simulator refuses what the real upstreams refuse per model (issue 14): tool name patterns, output
ceilings, Claude's sampling rules, Bedrock's base64-only image sources.
"""

from __future__ import annotations

from typing import Any

import pytest

from simhelp import Driver

LONG = "mcp__server__" + "x" * 60  # 73 characters


def _claude(**extra: Any) -> dict[str, Any]:
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], **extra}


def _converse(**inference: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 100, **inference}}


def _tool(name: str) -> dict[str, Any]:
    return {"name": name, "input_schema": {"type": "object"}}


@pytest.mark.parametrize("deployment, extra, message", [
    ("d-sonnet", {"temperature": 0.5, "top_p": 1}, "`temperature` and `top_p` cannot both be specified for this model"),
    ("d-opus", {"temperature": 0.5, "top_p": 0.9}, "`temperature` and `top_p` cannot both be specified"),
    ("d-haiku", {"temperature": 0.5, "top_p": 0.9}, "`temperature` and `top_p` cannot both be specified"),
    ("d-sonnet", {"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ("d-sonnet", {"max_tokens": 64001}, "max_tokens: 64001 > 64000, which is the maximum allowed number of output "
                                        "tokens for claude-sonnet-4-5-20250929"),
    ("d-opus", {"max_tokens": 32001}, "> 32000"),
    ("d-sonnet", {"tools": [_tool("a.b")]}, "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"),
    ("d-sonnet", {"tools": [_tool("x" * 129)]}, "tools.0.custom.name"),
    ("d-sonnet", {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}, "Input tag 'url'"),
])
def test_bedrock_invoke_refuses_what_claude_refuses(deployment: str, extra: dict[str, Any], message: str) -> None:
    r = Driver().post(deployment, "invoke", _claude(**extra))
    assert r.status == 400
    assert r.json()["message"].startswith("The model returned the following errors: ")
    assert message in r.json()["message"]
    assert r.header("x-amzn-ErrorType").startswith("ValidationException")


@pytest.mark.parametrize("extra", [{"temperature": 0.5}, {"top_p": 0.5}, {"max_tokens": 64000},
                                   {"tools": [_tool("mcp__" + "x" * 120)]}])
def test_bedrock_invoke_takes_what_claude_takes(extra: dict[str, Any]) -> None:
    assert Driver().post("d-sonnet", "invoke", _claude(**extra)).status == 200


def test_older_claude_takes_both_samplers() -> None:
    from sapproxy.simulator import SimulatorConfig, default_simulator_config
    from sapproxy.simulator.config import DeploymentSpec

    base = default_simulator_config()
    config = SimulatorConfig(clientid=base.clientid, clientsecret=base.clientsecret,
                             deployments={"d-s4": DeploymentSpec("bedrock", "anthropic--claude-4-sonnet")})
    assert Driver(config).post("d-s4", "invoke", _claude(temperature=0.5, top_p=0.9)).status == 200


@pytest.mark.parametrize("body, message", [
    (_converse(temperature=0.5, topP=1), "`temperature` and `top_p` cannot both be specified"),
    (_converse(temperature=1.2), "Member must have value less than or equal to 1"),
    (_converse(maxTokens=70000), "max_tokens: 70000 > 64000"),
    ({**_converse(), "toolConfig": {"tools": [{"toolSpec": {"name": "a.b", "inputSchema": {"json": {}}}}]}},
     "Member must satisfy regular expression pattern"),
    ({**_converse(), "toolConfig": {"tools": [{"toolSpec": {"name": LONG, "inputSchema": {"json": {}}}}]}},
     "length less than or equal to 64"),
])
def test_converse_refuses_what_bedrock_refuses(body: dict[str, Any], message: str) -> None:
    r = Driver().post("d-sonnet", "converse", body)
    assert r.status == 400 and message in r.json()["message"]


@pytest.mark.parametrize("name, message", [
    (LONG, "string too long. Expected a string with maximum length 64, but got a string with length 73 instead."),
    ("a.b", "string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."),
])
def test_azure_refuses_function_names_openai_refuses(name: str, message: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]}
    r = Driver().post("d-gpt41", "chat/completions?api-version=2024-10-21", body)
    assert r.status == 400, r.body
    error = r.json()["error"]
    assert error["message"] == f"Invalid 'tools[0].function.name': {message}"
    assert error["param"] == "tools[0].function.name"


def _vertex(**extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **extra}


@pytest.mark.parametrize("body, message", [
    (_vertex(tools=[{"functionDeclarations": [{"name": "1st"}]}]), "Invalid function name. Must start with a letter"),
    (_vertex(tools=[{"functionDeclarations": [{"name": LONG}]}]), "with a maximum length of 64"),
    (_vertex(tools=[{"functionDeclarations": [{"name": "a/b"}]}]), "Invalid function name"),
    (_vertex(generationConfig={"maxOutputTokens": 65537}), "maxOutputTokens value of 65537 but the supported range"),
])
def test_vertex_refuses_what_gemini_refuses(body: dict[str, Any], message: str) -> None:
    r = Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent", body)
    assert r.status == 400 and message in r.json()["error"]["message"]


def test_vertex_takes_dots_and_colons_and_its_ceiling() -> None:
    body = _vertex(tools=[{"functionDeclarations": [{"name": "_ns.tool:v1"}]}], generationConfig={"maxOutputTokens": 65536})
    assert Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent", body).status == 200


def test_vertex_takes_enum_values_only_as_strings() -> None:
    params = {"type": "object", "properties": {"level": {"type": "integer", "enum": [1, 2]}}}
    r = Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent",
                      _vertex(tools=[{"functionDeclarations": [{"name": "f", "parameters": params}]}]))
    assert r.status == 400
    assert r.json()["error"]["message"].endswith(
        "'tools[0].function_declarations[0].parameters.properties[level].value.enum[0]' (TYPE_STRING)")
    params["properties"]["level"] = {"type": "string", "enum": ["1", "2"]}
    assert Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent",
                         _vertex(tools=[{"functionDeclarations": [{"name": "f", "parameters": params}]}])).status == 200


def test_gemini_3_refuses_a_replayed_function_call_without_its_signature() -> None:
    from sapproxy.simulator import SimulatorConfig, default_simulator_config
    from sapproxy.simulator.config import DeploymentSpec

    base = default_simulator_config()
    config = SimulatorConfig(clientid=base.clientid, clientsecret=base.clientsecret,
                             deployments={"d-g3": DeploymentSpec("vertex", "gemini-3-pro-preview")})
    call = {"functionCall": {"name": "lookup", "args": {}}}
    history = [{"role": "user", "parts": [{"text": "find"}]}, {"role": "model", "parts": [{"text": "ok"}, call]},
               {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"content": "x"}}}]}]
    path = "models/gemini-3-pro-preview:generateContent"
    r = Driver(config).post("d-g3", path, {"contents": history})
    assert r.status == 400 and "missing a thought_signature" in r.json()["error"]["message"]
    history[1]["parts"][1] = {**call, "thoughtSignature": "c2ln"}
    assert Driver(config).post("d-g3", path, {"contents": history}).status == 200
    # Gemini 2.5 does not ask for them
    history[1]["parts"][1] = call
    assert Driver().post("d-gemini", "models/gemini-2.5-pro:generateContent", {"contents": history}).status == 200


@pytest.mark.parametrize("deployment, extra, ok, message", [
    ("d-sonnet", {"anthropic_beta": ["context-management-2025-06-27"], "context_management": {"edits": []}}, True, ""),
    ("d-sonnet", {"context_management": {"edits": []}}, False, "context_management: Extra inputs are not permitted"),
    ("d-sonnet", {"anthropic_beta": ["effort-2025-11-24"], "output_config": {"effort": "low"}}, False, "invalid beta flag"),
    ("d-sonnet", {"tools": [{**_tool("t"), "input_examples": [{}]}]}, False, "input_examples: Extra inputs"),
])
def test_bedrock_checks_model_specific_betas(deployment: str, extra: dict[str, Any], ok: bool, message: str) -> None:
    r = Driver().post(deployment, "invoke", _claude(**extra))
    assert (r.status == 200) is ok, r.body
    if not ok:
        assert message in r.json()["message"]
