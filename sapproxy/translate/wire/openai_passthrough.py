"""
Same dialect in and out: GPT behind an OpenAI client.  Nothing is translated, but the stream is still
looked at: the usage is recorded, the model is named as the client asked for it, and Azure's quirks that
OpenAI's own API never shows are smoothed away.
"""

from __future__ import annotations

from typing import Any

from sapproxy.translate.usage import Usage


class OpenAIPassthrough:
    """
    Azure OpenAI chunks to OpenAI chunks.

    - Azure's leading chunk with C{choices: []} and only C{prompt_filter_results} is dropped: OpenAI never
      sends one, and clients that read C{choices[0]} of every chunk break on it.
    - The gateway always asks the upstream for usage (so it can account for the request); the usage chunk
      is passed on only when the client asked for it too.
    - C{model} names what the client asked for.
    """

    __slots__ = ("_model", "_client_wants_usage", "usage")

    def __init__(self, model: str, *, client_wants_usage: bool) -> None:
        self._model = model
        self._client_wants_usage = client_wants_usage
        self.usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in chunk and "choices" not in chunk:
            return [chunk]
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
        if not chunk.get("choices"):
            if usage and self._client_wants_usage:
                chunk["model"] = self._model
                return [chunk]
            return []
        if not self._client_wants_usage and "usage" in chunk:
            del chunk["usage"]
        chunk["model"] = self._model
        return [chunk]

    def finish(self) -> list[dict[str, Any]]:
        return []


def openai_response(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """
    A non-streamed Azure completion, named as the client asked; Azure's C{prompt_filter_results} kept
    (harmless in a whole response, and some clients read it).
    """
    resp["model"] = model
    return resp
