"""
What a model generation accepts, where it differs from its family's API: the most output tokens it can
give, and Claude's sampling rules.  Names are the configured (AI Core) ones, such as
C{anthropic--claude-4.5-sonnet}, or the provider's, such as C{claude-sonnet-4-5-20250929} or
C{gemini-2.5-pro}.

Sources: Anthropic's models overview (max output per model), Anthropic's and AWS Bedrock's notes that
Claude Opus 4.1, Sonnet 4.5, Haiku 4.5 and later refuse C{temperature} and C{top_p} together ("`temperature`
and `top_p` cannot both be specified for this model. Please use only one."), and Google's Gemini model
pages (65,536 output tokens for Gemini 2.5 and 3, 8,192 for 2.0 and 1.5).
"""

from __future__ import annotations

import re
from typing import Any

from attrs import frozen

__all__ = ["ClaudeModel", "bedrock_model_betas", "claude_model", "max_output_tokens", "fit_claude_sampling"]


@frozen
class ClaudeModel:
    tier: str  # opus, sonnet, haiku
    version: tuple[int, int]


_TIER_FIRST = re.compile(r"claude-(opus|sonnet|haiku)-(\d+)(?:[.-](\d)(?!\d))?")
_VERSION_FIRST = re.compile(r"claude-(\d+)(?:[.-](\d)(?!\d))?-(opus|sonnet|haiku)")


def claude_model(name: str) -> ClaudeModel | None:
    """The tier and version a Claude model name says, or None when it says neither."""
    name = name.lower()
    match = _TIER_FIRST.search(name)
    if match:
        return ClaudeModel(match.group(1), (int(match.group(2)), int(match.group(3) or 0)))
    match = _VERSION_FIRST.search(name)
    if match:
        return ClaudeModel(match.group(3), (int(match.group(1)), int(match.group(2) or 0)))
    return None


_GEMINI = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


def max_output_tokens(name: str) -> int | None:
    """The most output tokens the model named C{name} gives, or None for a model this table does not know."""
    claude = claude_model(name)
    if claude is not None:
        if claude.version >= (4, 0):
            return 32000 if claude.tier == "opus" and claude.version < (4, 5) else 64000
        if claude.version >= (3, 7):
            return 64000
        if claude.version >= (3, 5):
            return 8192
        return 4096
    match = _GEMINI.search(name.lower())
    if match:
        version = (int(match.group(1)), int(match.group(2) or 0))
        return 65536 if version >= (2, 5) else 8192
    return None


def refuses_temperature_with_top_p(name: str) -> bool:
    """Claude Opus 4.1 and Sonnet/Haiku 4.5 and every later Claude refuse both sampling parameters at once."""
    claude = claude_model(name)
    if claude is None:
        return False
    return claude.version >= (4, 5) or (claude.tier == "opus" and claude.version >= (4, 1))


def fit_claude_sampling(body: dict[str, Any], model: str) -> dict[str, Any]:
    """
    An Anthropic Messages body (not mutated) whose sampling parameters Claude C{model} accepts:

      - C{temperature} above 1 (OpenAI allows up to 2, Claude up to 1) is clamped to 1: both APIs mean 1
        as the model's unscaled distribution, and a client asking for more randomness than that gets the
        most Claude offers, rather than a rescaled value that would change what 0.7 means;
      - where the model refuses C{temperature} and C{top_p} together (L{refuses_temperature_with_top_p})
        one is dropped: C{top_p}, unless C{temperature} is its default 1 and C{top_p} is not its default 1
        (then the client meant nucleus sampling, and C{temperature} goes).  Many OpenAI clients send
        C{top_p: 1} by default, which this drops;
      - whitespace-only stop sequences, which Claude refuses (OpenAI and Gemini take them), are left out.
    """
    temperature, top_p = body.get("temperature"), body.get("top_p")
    out = body
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature > 1:
        out = {**out, "temperature": 1}
        temperature = 1
    if temperature is not None and top_p is not None and refuses_temperature_with_top_p(model):
        drop = "temperature" if temperature == 1 and top_p != 1 else "top_p"
        out = {key: value for key, value in out.items() if key != drop}
    stops = out.get("stop_sequences")
    if isinstance(stops, list) and any(isinstance(x, str) and not x.strip() for x in stops):
        kept = [x for x in stops if not (isinstance(x, str) and not x.strip())]
        out = {key: value for key, value in out.items() if key != "stop_sequences"}
        if kept:
            out["stop_sequences"] = kept
    return out


#: Betas (and the request fields they enable) Bedrock takes only for some Claude models; Bedrock checks a
#: request's betas against its model, so these are passed only where the model has the feature.
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"  # context_management (Claude 4 and later)
EFFORT_BETA = "effort-2025-11-24"  # output_config.effort (Opus 4.5 and later)
TOOL_EXAMPLES_BETA = "tool-examples-2025-10-29"  # tools[].input_examples (Opus 4.5 and later)


def bedrock_model_betas(name: str | None) -> frozenset[str]:
    """The model-specific betas (above) the Claude model named C{name} takes on Bedrock."""
    claude = claude_model(name or "")
    if claude is None:
        return frozenset()
    betas = {CONTEXT_MANAGEMENT_BETA} if claude.version >= (4, 0) else set()
    if claude.tier == "opus" and claude.version >= (4, 5):
        betas |= {EFFORT_BETA, TOOL_EXAMPLES_BETA}
    return frozenset(betas)
