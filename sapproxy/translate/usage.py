"""
Token counts, in one shape whatever dialect reported them.

The dialects disagree on what "input tokens" means: OpenAI's C{prompt_tokens} and Gemini's
C{promptTokenCount} include cached tokens, Anthropic's C{input_tokens} excludes both cache reads and cache
writes.  L{Usage} always counts the whole prompt in C{prompt_tokens}, so that converting between dialects
never loses or double counts a token.
"""

from __future__ import annotations

from typing import Any, Mapping

from attrs import frozen

from sapproxy.translate import ir


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@frozen
class Usage:
    """
    @ivar prompt_tokens: every input token, cached or not.
    @ivar completion_tokens: every output token, reasoning included.
    @ivar cached_tokens: input tokens read from a prompt cache.
    @ivar cache_creation_tokens: input tokens written to a prompt cache.
    @ivar reasoning_tokens: output tokens spent on thinking.
    @ivar estimated: C{True} when the upstream reported nothing and these numbers are our own estimate.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any]) -> Usage:
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(prompt_details.get("cached_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        )

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any]) -> Usage:
        read = _int(usage.get("cache_read_input_tokens"))
        created = _int(usage.get("cache_creation_input_tokens"))
        output_details = usage.get("output_tokens_details") or {}
        return cls(
            prompt_tokens=_int(usage.get("input_tokens")) + read + created,
            completion_tokens=_int(usage.get("output_tokens")),
            cached_tokens=read,
            cache_creation_tokens=created,
            reasoning_tokens=_int(output_details.get("thinking_tokens")),
        )

    @classmethod
    def from_gemini(cls, metadata: Mapping[str, Any]) -> Usage:
        thoughts = _int(metadata.get("thoughtsTokenCount"))
        return cls(
            prompt_tokens=_int(metadata.get("promptTokenCount")),
            completion_tokens=_int(metadata.get("candidatesTokenCount")) + thoughts,
            cached_tokens=_int(metadata.get("cachedContentTokenCount")),
            reasoning_tokens=thoughts,
        )

    @classmethod
    def from_converse(cls, usage: Mapping[str, Any]) -> Usage:
        read = _int(usage.get("cacheReadInputTokens"))
        written = _int(usage.get("cacheWriteInputTokens"))
        return cls(
            prompt_tokens=_int(usage.get("inputTokens")) + read + written,
            completion_tokens=_int(usage.get("outputTokens")),
            cached_tokens=read,
            cache_creation_tokens=written,
        )

    def merged(self, later: Usage) -> Usage:
        """
        Combine two partial reports of one response, keeping the larger count of each kind.

        Streams report usage piecemeal (Anthropic: input in C{message_start}, output in C{message_delta}),
        and a later report never lowers a count that an earlier one gave.
        """
        return Usage(
            prompt_tokens=max(self.prompt_tokens, later.prompt_tokens),
            completion_tokens=max(self.completion_tokens, later.completion_tokens),
            cached_tokens=max(self.cached_tokens, later.cached_tokens),
            cache_creation_tokens=max(self.cache_creation_tokens, later.cache_creation_tokens),
            reasoning_tokens=max(self.reasoning_tokens, later.reasoning_tokens),
            estimated=self.estimated and later.estimated,
        )

    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    def to_anthropic(self) -> ir.Usage:
        usage: ir.Usage = {
            "input_tokens": max(self.prompt_tokens - self.cached_tokens - self.cache_creation_tokens, 0),
            "output_tokens": self.completion_tokens,
            "cache_read_input_tokens": self.cached_tokens,
            "cache_creation_input_tokens": self.cache_creation_tokens,
        }
        if self.reasoning_tokens:
            # Not Anthropic's: the thinking share of output_tokens, which from_anthropic reads back, so
            # an OpenAI client behind the IR gets its reasoning_tokens (see ir.Usage).
            usage["output_tokens_details"] = {"thinking_tokens": self.reasoning_tokens}
        return usage
