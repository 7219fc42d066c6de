"""
Same dialect in and out: GPT behind an OpenAI client.  Nothing is translated, but the stream is still
looked at: the usage is recorded, the model is named as the client asked for it, and Azure's quirks that
OpenAI's own API never shows are smoothed away.
"""

from __future__ import annotations

from typing import Any

from sapproxy.translate.framing.sse import Rendered
from sapproxy.translate.named import named_response
from sapproxy.translate.jsontext import json_text, parse_json
from sapproxy.translate.usage import Usage

_loads = parse_json


def parse_keeping_bytes(data: str) -> Rendered:
    """
    One upstream chunk, parsed, with its own JSON kept: a pass-through chunk changes in its C{model} (and an
    C{usage: null} the client did not ask for) only, so L{OpenAIPassthrough} edits those few bytes instead
    of serialising the whole chunk again (with Azure's filter results, two thirds of a chunk's cost).
    """
    return Rendered(_loads(data), data.encode("utf-8"))


class OpenAIPassthrough:
    """
    Azure OpenAI chunks to OpenAI chunks.

    - Azure's leading chunk with C{choices: []} and only C{prompt_filter_results} is dropped: OpenAI never
      sends one, and clients that read C{choices[0]} of every chunk break on it.
    - The gateway always asks the upstream for usage (so it can account for the request); the usage chunk
      is passed on only when the client asked for it too.
    - C{model} names what the client asked for.
    """

    __slots__ = ("_model", "_model_json", "_client_wants_usage", "usage", "_needle")

    #: How the pipeline's SSE source should parse for this translator: keeping each chunk's bytes.
    keeps_bytes = staticmethod(parse_keeping_bytes)

    def __init__(self, model: str, *, client_wants_usage: bool) -> None:
        self._model = model
        self._model_json = b'"model":' + json_text(model)
        self._client_wants_usage = client_wants_usage
        self.usage: Usage | None = None
        #: The upstream's model as its chunks spell it, and those bytes (one model per stream, as a rule).
        self._needle: tuple[Any, bytes] = (None, b"")

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in chunk and "choices" not in chunk:
            return [chunk]
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
        if not chunk.get("choices"):
            if usage and self._client_wants_usage:
                return [self._named(chunk, False)]
            return []
        return [self._named(chunk, not self._client_wants_usage and "usage" in chunk)]

    def _named(self, chunk: dict[str, Any], drop_usage: bool) -> dict[str, Any]:
        """
        C{chunk} with the client's model name (and without C{usage} when C{drop_usage}); for a chunk that
        still has its upstream JSON (L{parse_keeping_bytes}), that JSON edited in place where the edit is
        unambiguous, else a plain dict that the encoder serialises.

        An unescaped C{"model":"..."} can only be a key (a quote inside a JSON string is escaped), and
        chat chunks have one C{model}, at the top: the edit is made only where the upstream's spelling
        occurs exactly once.
        """
        upstream = chunk.get("model")
        removed = chunk.pop("usage") if drop_usage else None
        chunk["model"] = self._model
        if type(chunk) is not Rendered:
            return chunk
        raw: bytes = chunk.json
        if upstream != self._model:
            needle = self._needle[1] if self._needle[0] == upstream else None
            if needle is None and isinstance(upstream, str):
                needle = b'"model":' + json_text(upstream)
                self._needle = (upstream, needle)
            if needle is None or raw.count(needle) != 1:
                return dict(chunk)
            raw = raw.replace(needle, self._model_json)
        if drop_usage:
            if removed is not None:
                return dict(chunk)
            if raw.count(b',"usage":null') == 1:
                raw = raw.replace(b',"usage":null', b"")
            elif raw.count(b'"usage":null,') == 1:
                raw = raw.replace(b'"usage":null,', b"")
            else:
                return dict(chunk)
        chunk.json = raw
        return chunk

    def finish(self) -> list[dict[str, Any]]:
        return []


def openai_response(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """
    A non-streamed Azure completion, named as the client asked; Azure's C{prompt_filter_results} kept
    (harmless in a whole response, and some clients read it).

    A response that still has the upstream's JSON (L{Rendered}, as the dispatcher reads whole responses)
    comes back as a new L{Rendered} of that JSON with its C{model} edited, as a stream's chunks do (see
    L{OpenAIPassthrough._named}), so the client's body is not serialised again; where the edit is not
    unambiguous, as a plain dict that the encoder serialises.
    """
    return named_response(resp, model)
