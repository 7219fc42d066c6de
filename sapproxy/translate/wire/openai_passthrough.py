"""
Same dialect in and out: GPT behind an OpenAI client.  Nothing is translated, but the stream is still
looked at: the usage is recorded, the model is named as the client asked for it, and Azure's quirks that
OpenAI's own API never shows are smoothed away.
"""

from __future__ import annotations

from typing import Any

import msgspec

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


_UNSET = msgspec.UNSET


class _Delta(msgspec.Struct, gc=False):
    content: Any = None
    reasoning_content: Any = None
    tool_calls: Any = None


class _Choice(msgspec.Struct, gc=False):
    delta: _Delta | None = None


class _Chunk(msgspec.Struct, gc=False):
    """
    What L{OpenAIPassthrough.feed_raw} reads of a chunk; the decoder skips everything else (Azure's filter
    results, ids, fingerprints) without making a Python object of it, and refuses (L{msgspec.DecodeError})
    a chunk whose fields have other types, which then goes the dict path.  An absent key is C{UNSET}.
    """

    choices: list[_Choice] | None = None
    model: Any = _UNSET
    usage: Any = _UNSET
    error: Any = _UNSET
    delta: Any = _UNSET


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_DecodeError = msgspec.DecodeError


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

    def feed_raw(self, raw: bytes, out: list[bytes]) -> int:
        """
        L{feed}, the edit of L{_named} and the client's framing (C{data: ...}) in one, from one event's data
        as bytes: the pipeline's lane (L{sapproxy.translate.framing.pipeline.StreamPipeline}).  Appends
        the client's event to C{out} (or nothing, for a chunk the client does not get) and returns the
        characters of output in it (L{sapproxy.translate.estimate.event_text_chars}); returns -1, having
        changed nothing, for a chunk it leaves to L{feed}: an error, a shape other than a chat chunk's, an
        edit that is not a byte edit, or bytes that are not UTF-8 (which the dict path decodes with
        replacement characters).  Whatever it writes is byte for byte what L{feed} and the encoder write.

        The dict path was half of a pass-through stream's work: per 50-event Azure stream the whole process
        took 6.39 M instructions with it, 4.50 M with this (bench/stream_cost.py).
        """
        try:
            chunk = _decode_chunk(raw)
        except _DecodeError:
            return -1
        if chunk.error is not _UNSET or chunk.delta is not _UNSET:
            return -1
        if not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return -1
        usage = chunk.usage
        if usage:
            self.usage = Usage.from_openai(usage)  # as feed does, first (the dict path would again: the same)
        choices = chunk.choices
        wants = self._client_wants_usage
        if not choices:
            if not (usage and wants):
                return 0
            drop_usage = False
        else:
            drop_usage = not wants and usage is not _UNSET
            if drop_usage and usage is not None:
                return -1  # the dict path drops the usage object and serialises the chunk again
        upstream = chunk.model
        if upstream != self._model:
            if type(upstream) is not str:
                return -1
            if self._needle[0] == upstream:
                needle = self._needle[1]
            else:
                needle = b'"model":' + json_text(upstream)
                self._needle = (upstream, needle)
            at = raw.find(needle)
            end = at + len(needle)
            if at < 0 or raw.find(needle, end) >= 0:
                return -1
            raw = raw[:at] + self._model_json + raw[end:]
        if drop_usage:
            at = raw.find(b',"usage":null')
            if at >= 0:
                end = at + 13
                if raw.find(b',"usage":null', end) >= 0:
                    return -1
            else:
                at = raw.find(b'"usage":null,')
                end = at + 13
                if at < 0 or raw.find(b'"usage":null,', end) >= 0:
                    return -1
            raw = raw[:at] + raw[end:]
        chars = 0
        if choices:
            delta = choices[0].delta
            if delta is not None:
                chars = len(delta.content or "") + len(delta.reasoning_content or "")
                for call in delta.tool_calls or ():
                    chars += len((call.get("function") or {}).get("arguments") or "")
        out.append(b"data: " + raw + b"\n\n")
        return chars

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
