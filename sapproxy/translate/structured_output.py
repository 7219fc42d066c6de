"""
Structured outputs for Claude: a JSON schema the answer must follow (OpenAI's C{response_format:
json_schema}, Anthropic's C{output_config.format}) and tools whose calls must follow their schema
(C{strict: true}).

Bedrock's InvokeModel enforces both for Claude Sonnet 4.5, Haiku 4.5, Opus 4.5, Opus 4.6 and later (AWS,
"Structured outputs for Anthropic Claude models": C{output_config.format} and tool C{strict}, generally
available without a beta); older Claude models get the schema as an instruction in the system prompt
instead (what the model is told; nothing enforces it), and their tools' C{strict} is left out.  The
constrained decoder takes only closed objects, so an object schema that does not say
C{additionalProperties} is closed (C{false}), as OpenAI's strict mode requires anyway.  Pure.
"""

from __future__ import annotations

import json
from typing import Any

from sapproxy.translate.model_limits import claude_model

__all__ = ["JSON_OBJECT_INSTRUCTION", "closed_schema", "json_schema_instruction", "takes_structured_outputs"]

JSON_OBJECT_INSTRUCTION = "Respond only with a single valid JSON object, with no text before or after it."


def json_schema_instruction(schema: Any) -> str:
    """The system instruction that stands for a JSON schema where the upstream cannot enforce one."""
    text = json.dumps(schema, ensure_ascii=False)
    return f"{JSON_OBJECT_INSTRUCTION} It must conform to this JSON schema: {text}"


def takes_structured_outputs(model: str | None) -> bool:
    """Whether Bedrock enforces C{output_config.format} and strict tools for the Claude model C{model}."""
    claude = claude_model(model or "")
    return claude is not None and claude.version >= (4, 5)


def closed_schema(schema: Any, depth: int = 0) -> Any:
    """C{schema} with every object that does not say C{additionalProperties} closed (not mutated)."""
    if depth > 64:
        return schema
    if isinstance(schema, list):
        return [closed_schema(item, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed_schema(value, depth + 1) if key in _SUBSCHEMA_KEYS else value for key, value in schema.items()}
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: closed_schema(sub, depth + 1) for name, sub in out[key].items()}
    kind = out.get("type")
    if (kind == "object" or (isinstance(kind, list) and "object" in kind)) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


_SUBSCHEMA_KEYS = frozenset({"items", "anyOf", "allOf", "oneOf", "not", "prefixItems"})
