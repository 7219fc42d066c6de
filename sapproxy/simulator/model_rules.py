"""
Per-model rules the real upstreams enforce beyond their JSON schema, as strictly as they do: tool name
patterns, output token ceilings, Claude's sampling rules, image sources.  Kept apart from the gateway's
own tables (L{sapproxy.translate.model_limits}) on purpose: the simulator stands for the upstream, so a
gateway table that drifts from it shows up as a refused request in tests.

Each check returns the upstream's error message, or None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Anthropic model ids (as Bedrock reports them) -> their most output tokens (Anthropic's models overview).
CLAUDE_MAX_OUTPUT = {
    "claude-sonnet-4-5-20250929": 64000,
    "claude-sonnet-4-20250514": 64000,
    "claude-opus-4-1-20250805": 32000,
    "claude-opus-4-20250514": 32000,
    "claude-haiku-4-5-20251001": 64000,
    "claude-3-7-sonnet-20250219": 64000,
}
#: Claude models that refuse temperature and top_p together.
CLAUDE_ONE_SAMPLER = frozenset({"claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"})

ANTHROPIC_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
CONVERSE_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
OPENAI_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
GEMINI_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
GEMINI_MAX_OUTPUT = 65536


#: Betas Bedrock checks against the model (context management: Claude 4 and later; effort and tool examples:
#: Opus 4.5), and the request field each one enables.
MODEL_BETAS = {
    "context-management-2025-06-27": ("context_management", lambda m: not m.startswith("claude-3")),
    "effort-2025-11-24": ("output_config", lambda m: m.startswith("claude-opus-4-5")),
    "tool-examples-2025-10-29": ("input_examples", lambda m: m.startswith("claude-opus-4-5")),
}


def claude_errors(body: Mapping[str, Any], model_id: str) -> str | None:
    """Anthropic's own 400s for an InvokeModel body, beyond those of L{anthropic_body.model_errors}."""
    betas = body.get("anthropic_beta") or []
    for beta, (field, supported) in MODEL_BETAS.items():
        if beta in betas and not supported(model_id):
            return "invalid beta flag"
        used = field in body if field != "input_examples" else any(
            isinstance(t, Mapping) and "input_examples" in t for t in body.get("tools") or ())
        if used and beta not in betas:
            return f"{field}: Extra inputs are not permitted"
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if isinstance(temperature, (int, float)) and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    if temperature is not None and top_p is not None and model_id in CLAUDE_ONE_SAMPLER:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    ceiling = CLAUDE_MAX_OUTPUT.get(model_id)
    max_tokens = body.get("max_tokens")
    if ceiling is not None and isinstance(max_tokens, int) and max_tokens > ceiling:
        return (f"max_tokens: {max_tokens} > {ceiling}, which is the maximum allowed number of output tokens "
                f"for {model_id}")
    for i, tool in enumerate(body.get("tools") or ()):
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and tool.get("type") in (None, "custom"):
            if not ANTHROPIC_TOOL_NAME.match(tool["name"]):
                return f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, Mapping) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            source = block.get("source") if isinstance(block, Mapping) else None
            if isinstance(source, Mapping) and source.get("type") == "url":
                # Bedrock's InvokeModel takes base64 sources only.
                return (f"messages.{i}.content.{j}.{block.get('type')}.source: Input tag 'url' found using 'type' "
                        "does not match any of the expected tags: 'base64'")
    return None


def converse_errors(body: Mapping[str, Any], model_id: str) -> str | None:
    """Bedrock Converse's 400s for the inference settings and tools of C{body}."""
    inference = body.get("inferenceConfig") or {}
    temperature = inference.get("temperature")
    if isinstance(temperature, (int, float)) and not 0 <= temperature <= 1:
        return ("1 validation error detected: Value at 'inferenceConfig.temperature' failed to satisfy "
                "constraint: Member must have value less than or equal to 1")
    if temperature is not None and inference.get("topP") is not None and model_id in CLAUDE_ONE_SAMPLER:
        return ("The model returned the following errors: `temperature` and `top_p` cannot both be specified "
                "for this model. Please use only one.")
    ceiling = CLAUDE_MAX_OUTPUT.get(model_id)
    max_tokens = inference.get("maxTokens")
    if ceiling is not None and isinstance(max_tokens, int) and max_tokens > ceiling:
        return (f"The model returned the following errors: max_tokens: {max_tokens} > {ceiling}, which is the "
                f"maximum allowed number of output tokens for {model_id}")
    tools = (body.get("toolConfig") or {}).get("tools") or ()
    for i, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        name = spec.get("name") if isinstance(spec, Mapping) else None
        if isinstance(name, str) and (len(name) > 64 or not CONVERSE_TOOL_NAME.match(name)):
            return (f"1 validation error detected: Value '{name}' at 'toolConfig.tools.{i + 1}.member.toolSpec.name' "
                    "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                    "[a-zA-Z0-9_-]+ and length less than or equal to 64")
    return None


def openai_tool_errors(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """Azure OpenAI's 400 for a function name it refuses: (message, param)."""
    for i, tool in enumerate(body.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str):
            continue
        param = f"tools[{i}].function.name"
        if len(name) > 64:
            return (f"Invalid '{param}': string too long. Expected a string with maximum length 64, but got a "
                    f"string with length {len(name)} instead.", param)
        if not OPENAI_TOOL_NAME.match(name):
            return (f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
                    "pattern '^[a-zA-Z0-9_-]+$'.", param)
    return None


def gemini_errors(body: Mapping[str, Any], tools: Any, gen: Mapping[str, Any], model: str = "") -> str | None:
    """Vertex's 400s for function names, enum values, the output token ceiling and (Gemini 3) unsigned
    replayed function calls."""
    if re.search(r"gemini-([3-9]|\d\d)", model):
        for i, content in enumerate(body.get("contents") or ()):
            parts = content.get("parts") if isinstance(content, Mapping) else None
            calls = [(j, p) for j, p in enumerate(parts or ()) if isinstance(p, Mapping) and "functionCall" in p]
            if calls and isinstance(content, Mapping) and content.get("role") == "model" \
                    and not calls[0][1].get("thoughtSignature"):
                name = (calls[0][1].get("functionCall") or {}).get("name")
                return (f"Function call is missing a thought_signature in functionCall parts. This is required for "
                        f"tools to work correctly, and missing thought_signature may lead to degraded model "
                        f"performance. Additional data, function call `default_api:{name}` , position {i + 1}. "
                        "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
    for i, tool in enumerate(tools or ()):
        decls = (tool.get("functionDeclarations") or tool.get("function_declarations") or ()) \
            if isinstance(tool, Mapping) else ()
        for j, decl in enumerate(decls):
            name = decl.get("name") if isinstance(decl, Mapping) else None
            if isinstance(name, str) and not GEMINI_TOOL_NAME.match(name):
                return (f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: [FIELD_INVALID] "
                        "Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, "
                        "or contain underscores, dots, colons and dashes, with a maximum length of 64.\n")
    for i, tool in enumerate(tools or ()):
        decls = (tool.get("functionDeclarations") or tool.get("function_declarations") or ()) \
            if isinstance(tool, Mapping) else ()
        for j, decl in enumerate(decls):
            where = _non_string_enum(decl.get("parameters") if isinstance(decl, Mapping) else None,
                                     f"tools[{i}].function_declarations[{j}].parameters")
            if where is not None:
                return f"Invalid value at '{where}' (TYPE_STRING)"
    limit = gen.get("maxOutputTokens", gen.get("max_output_tokens"))
    if isinstance(limit, int) and limit > GEMINI_MAX_OUTPUT:
        return (f"Unable to submit request because it has a maxOutputTokens value of {limit} but the supported "
                f"range is from 1 (inclusive) to {GEMINI_MAX_OUTPUT + 1} (exclusive). Update the value and try "
                "again.")
    return None


def _non_string_enum(schema: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first enum value that is not a string (Vertex's C{Schema.enum} is C{string[]})."""
    if depth > 32 or not isinstance(schema, Mapping):
        return None
    for k, value in enumerate(schema.get("enum") or ()):
        if not isinstance(value, str):
            return f"{path}.enum[{k}]"
    for name, sub in (schema.get("properties") or {}).items():
        found = _non_string_enum(sub, f"{path}.properties[{name}].value", depth + 1)
        if found:
            return found
    for key in ("items",):
        found = _non_string_enum(schema.get(key), f"{path}.{key}", depth + 1)
        if found:
            return found
    for k, sub in enumerate(schema.get("anyOf") or ()):
        found = _non_string_enum(sub, f"{path}.any_of[{k}]", depth + 1)
        if found:
            return found
    return None
