"""
One upstream stream to one client stream: bytes in, framed client events out.

A pipeline is a source (which turns upstream bytes into event dicts: SSE JSON, AWS event-stream), a chain
of translators (each C{feed(event) -> [events]}, C{finish() -> [events]}), and an encoder (which frames a
client event for one write).  It knows nothing about sockets, so the relay that moves the bytes and the
converters that change them are tested apart.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from sapproxy.translate.estimate import event_text_chars
from sapproxy.translate.framing.sse import SSEDecoder, encode_data
from sapproxy.translate.jsontext import parse_json
from sapproxy.translate.usage import Usage


class UpstreamStreamError(Exception):
    """
    The upstream sent bytes that are not the stream its headers promised.
    """


class Source(Protocol):
    def feed(self, data: bytes) -> list[Any]: ...


class Translator(Protocol):
    def feed(self, event: Any) -> list[Any]: ...

    def finish(self) -> list[Any]: ...


class SSEJsonSource:
    """
    An SSE stream whose C{data:} fields are JSON (OpenAI, Anthropic, Gemini); C{[DONE]} is dropped here
    and written once by the relay at the end, whatever the upstream did.
    """

    __slots__ = ("_decoder", "_parse")

    def __init__(self, parse: Callable[[str], Any] = parse_json) -> None:
        self._decoder = SSEDecoder()
        self._parse = parse

    def keep_bytes(self, parse: Callable[[str], Any]) -> None:
        """
        Parse with C{parse} instead, for a first translator that wants each event's own JSON kept
        (L{StreamPipeline} asks, for a translator with C{keeps_bytes}).
        """
        self._parse = parse

    def raw(self) -> SSEDecoder:
        """
        The decoder, switched to giving a one-line event's data as bytes (L{SSEDecoder}'s C{raw}), for a
        pipeline that reads those itself (L{StreamPipeline}'s lane); L{parse} reads the rest.
        """
        self._decoder.raw = True
        return self._decoder

    def feed(self, data: bytes) -> list[Any]:
        return self._events(self._decoder.feed(data))

    def finish(self) -> list[Any]:
        return self._events(self._decoder.finish())

    def parse(self, data: str) -> Any:
        """
        One event's data as the source parses it; L{UpstreamStreamError} where it is not JSON.
        """
        try:
            return self._parse(data)
        except ValueError:
            raise UpstreamStreamError(f"upstream sent an event that is not JSON: {data[:80]!r}") from None

    def _events(self, raw: list[Any]) -> list[Any]:
        out = []
        for event in raw:
            data = event.data
            if data == "[DONE]" or not data.strip():
                continue
            out.append(self.parse(data))
        return out


class StreamPipeline:
    """
    @ivar error: the type of the last error event the client was sent (both dialects put an C{error} object
        in it), for the usage row; L{None} while all is well.
    """

    __slots__ = ("_source", "_translators", "_encode", "error", "output_chars", "_lane", "_decoder")

    def __init__(self, source: Source, translators: Sequence[Translator], encode: Callable[[Any], bytes]) -> None:
        self._source = source
        self._translators = tuple(translators)
        # A pass-through translator edits the upstream's own JSON of each event rather than serialising it
        # again; the source keeps it when it can (an SSE JSON source), at no cost to any other pipeline.
        keeps = getattr(self._translators[0], "keeps_bytes", None) if self._translators else None
        if keeps is not None and hasattr(source, "keep_bytes"):
            source.keep_bytes(keeps)
        self._encode = encode
        self.error: str | None = None
        #: Characters of model output sent to the client, for an estimate when the upstream gives no usage.
        self.output_chars = 0
        #: The lane: a lone translator that takes an SSE event's data as bytes and writes the client's
        #: framed event itself (GPT pass-through, L{sapproxy.translate.wire.openai_passthrough}), skipping
        #: the decoded text, the event dict and the encoder for the events it can take (see L{_lane_run}).
        self._lane: Callable[[bytes, list[bytes]], int] | None = None
        self._decoder: SSEDecoder | None = None
        lane = getattr(self._translators[0], "feed_raw", None) if len(self._translators) == 1 else None
        if lane is not None and encode is encode_data and isinstance(source, SSEJsonSource):
            self._lane = lane
            self._decoder = source.raw()

    @property
    def usage(self) -> Usage | None:
        """
        The token counts learnt so far: the translator nearest the upstream knows them first-hand.
        """
        for translator in self._translators:
            usage = getattr(translator, "usage", None)
            if usage is not None:
                return usage
        return None

    def feed(self, data: bytes) -> list[bytes]:
        if self._decoder is not None:
            return self._lane_run(self._decoder.feed(data))
        return self._run(self._source.feed(data), 0)

    def finish(self) -> list[bytes]:
        if self._decoder is not None:
            out = self._lane_run(self._decoder.finish())
        else:
            finish = getattr(self._source, "finish", None)
            out = self._run(finish() if finish else [], 0)
        for index, translator in enumerate(self._translators):
            out.extend(self._run(translator.finish(), index + 1))
        return out

    def failure(self, kind: str, message: str) -> bytes | None:
        """
        The stream's last event when it broke after its first byte, from the client-side translator when it
        has one to give (a Responses stream ends with C{response.failed}, which only it can build); None
        for the relay's dialect-wide error event.
        """
        fail = getattr(self._translators[-1], "fail", None) if self._translators else None
        if fail is None:
            return None
        return b"".join(self._encode(event) for event in fail(kind, message)) or None

    def _lane_run(self, items: list[Any]) -> list[bytes]:
        """
        The decoder's events through the lane: a one-line event's data (bytes) goes to the lane, which
        writes the client's event and returns the characters of output in it, or -1 for an event it leaves
        to the dict path (an error, a chunk whose edit is not a byte edit, bytes that are not UTF-8: rare);
        those, and every event the decoder gave as an L{SSEEvent}, go the way they would without the lane,
        in order.  What the client gets is byte for byte what the dict path sends
        (tests/translate/test_tr_passthrough.py).

        Measured by bench/stream_cost.py (callgrind, the whole process, 50-event Azure-shaped streams): 6.39 M
        instructions per stream on the dict path, 4.50 M with the lane (bench/pipeline_cost.py, the conversion
        alone: 3.41 M -> 1.87 M).
        """
        lane = self._lane
        assert lane is not None
        out: list[bytes] = []
        chars = 0
        for item in items:
            if type(item) is bytes:
                if item == b"[DONE]":
                    continue
                n = lane(item, out)
                if n >= 0:
                    chars += n
                    continue
                data = item.decode("utf-8", "replace")
            else:
                data = item.data
            if data == "[DONE]" or not data.strip():
                continue
            out.extend(self._run([self._source.parse(data)], 0))  # type: ignore[attr-defined]
        self.output_chars += chars
        return out

    def _run(self, events: list[Any], start: int) -> list[bytes]:
        for translator in self._translators[start:]:
            if not events:
                return []
            if len(events) == 1:
                events = translator.feed(events[0])
            else:
                events = [out for event in events for out in translator.feed(event)]
        encode = self._encode
        out = []
        chars = 0
        for event in events:
            chars += event_text_chars(event)
            if "error" in event:
                error = event["error"]
                self.error = str(error.get("type") or "api_error") if isinstance(error, dict) else "api_error"
            out.append(encode(event))
        self.output_chars += chars
        return out
