"""
A lean, fast simulated SAP AI Core for benchmarks (the fair baseline: the upstream must never be the
bottleneck).

Plain twisted.web (no Klein routing, no request logging, no token bookkeeping); every response is
pre-encoded once per shape and cached, so serving a request costs one small JSON parse of the request body
(for ``"stream"``) plus a write.

Paths (all POST):
  /oauth/token                                          XSUAA token (any credentials)
  /v2/inference/deployments/{id}/chat/completions       Azure OpenAI: JSON, or SSE of N chunks when stream
  /v2/inference/deployments/{id}/invoke                 Bedrock Claude JSON
  /v2/inference/deployments/{id}/responses             Azure OpenAI Responses API: SSE of N output_text deltas
  /v2/inference/deployments/{id}/invoke-with-response-stream   AWS event-stream frames {"bytes": b64(event)}
  /v2/inference/deployments/{id}/converse[-stream]      Bedrock Converse JSON, or ConverseStream as SSE data lines
  /v2/inference/deployments/{id}/models/{m}:streamGenerateContent?alt=sse   Vertex SSE
  /v2/inference/deployments/{id}/models/{m}:generateContent                  Vertex JSON
  /v1/chat/completions                                  OpenAI-compatible plain path (LiteLLM, Portkey, bare)

Streams have the shapes of the recorded provider streams in tests/fixtures (bench/shapes.py): Azure or
OpenAI chunks on the chat paths, Anthropic events in Bedrock's event-stream, ConverseStream events, Gemini
chunks.  Per request, a ``#sim{"events": N, "event_bytes": B, "delay": S, "shape": "azure|openai|minimal"}``
anywhere in the body (the same directive the bundled simulator reads from the last user message) sets the
number of content events, the bytes of text per event (0: the recorded tokens), the seconds between events
and the chat-completions shape; defaults come from the command line.

    python bench/upstream.py --port 3199 [--events 50] [--event-bytes 0] [--delay 0] [--shape azure]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.web.http import toChunk
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

import shapes as _shapes  # bench/shapes.py: the recorded streams' shapes (run as a script from bench/)

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_SIM = re.compile(rb"#sim(\{[^}]*\})")
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
TOKEN_BODY = _dumps({"access_token": "bench-token", "token_type": "bearer", "expires_in": 43199,
                     "scope": "uaa.resource", "jti": "bench"}).encode()

CREATED = 1700000000
USAGE = {"prompt_tokens": 12, "completion_tokens": 50, "total_tokens": 62}


def _text(n: int, i: int) -> str:
    return _shapes.synthetic_text(n, i)


class Shapes:
    """
    Pre-encoded bodies per (kind, shape, events, event_bytes); built on first use and cached.  Streams come
    from L{bench.shapes} (the recorded fixtures' shapes); whole JSON bodies stay small and synthetic.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int, int], Any] = {}

    def get(self, kind: str, events: int, nbytes: int, shape: str = "") -> Any:
        key = (kind, shape, events, nbytes)
        hit = self._cache.get(key)
        if hit is None:
            if kind == "stream":
                hit = _shapes.stream(shape, events, nbytes)
            else:
                hit = getattr(self, "_" + kind)(events, nbytes or 8)
            self._cache[key] = hit
        return hit

    def _openai_json(self, events: int, nbytes: int) -> bytes:
        text = "".join(_text(nbytes, i) for i in range(events))
        return _dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": "gpt-4.1",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop", "logprobs": None}],
                       "usage": USAGE}).encode()

    # Azure OpenAI's Responses API (GPT deployments' /responses)

    def _responses_sse(self, events: int, nbytes: int) -> list[bytes]:
        resp = {"id": "resp_bench", "object": "response", "created_at": CREATED, "status": "in_progress",
                "model": "gpt-4.1", "output": [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": None}
        item = {"id": "msg_bench", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        base = {"item_id": "msg_bench", "output_index": 0, "content_index": 0}
        out: list[dict[str, Any]] = [
            {"type": "response.created", "response": resp},
            {"type": "response.in_progress", "response": resp},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.content_part.added", **base,
             "part": {"type": "output_text", "annotations": [], "text": ""}},
        ]
        text = ""
        for i in range(events):
            piece = _text(nbytes, i)
            text += piece
            out.append({"type": "response.output_text.delta", **base, "delta": piece, "logprobs": []})
        part = {"type": "output_text", "annotations": [], "text": text}
        done_item = dict(item, status="completed", content=[part])
        out += [
            {"type": "response.output_text.done", **base, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **base, "part": part},
            {"type": "response.output_item.done", "output_index": 0, "item": done_item},
            {"type": "response.completed", "response": dict(resp, status="completed", output=[done_item], usage={
                "input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 50,
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 62})},
        ]
        frames = []
        for n, e in enumerate(out):
            e["sequence_number"] = n
            frames.append(b"event: " + e["type"].encode() + b"\ndata: " + _dumps(e).encode() + b"\n\n")
        return frames

    def _bedrock_json(self, events: int, nbytes: int) -> bytes:
        text = "".join(_text(nbytes, i) for i in range(events))
        return _dumps({"id": "msg_bdrk_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                       "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 50}}).encode()

    def _converse_json(self, events: int, nbytes: int) -> bytes:
        text = "".join(_text(nbytes, i) for i in range(events))
        return _dumps({"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                       "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 50, "totalTokens": 62},
                       "metrics": {"latencyMs": 100}}).encode()

    def _vertex_json(self, events: int, nbytes: int) -> bytes:
        text = "".join(_text(nbytes, i) for i in range(events))
        return _dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                                       "index": 0}],
                       "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 50, "totalTokenCount": 62},
                       "modelVersion": "gemini-2.5-pro"}).encode()


class Stats:
    requests = 0
    streams_open = 0


class Upstream(Resource):
    isLeaf = True

    def __init__(self, reactor: Any, events: int, event_bytes: int, delay: float, shape: str = "azure") -> None:
        super().__init__()
        self.shape = shape
        self.reactor = reactor
        self.events = events
        self.event_bytes = event_bytes
        self.delay = delay
        self.shapes = Shapes()
        #: A stream's events after the first, each framed as its own HTTP chunk, joined: per frames list
        #: (the shapes' lists are cached for the process's life, so their ids stay theirs).
        self._chunked_rest: dict[int, bytes] = {}

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return _dumps({"requests": Stats.requests, "streams_open": Stats.streams_open}).encode()

    def render_POST(self, request: Any) -> Any:
        Stats.requests += 1
        path = request.path
        if path == b"/oauth/token":
            request.setHeader(b"content-type", b"application/json;charset=UTF-8")
            return TOKEN_BODY
        body = request.content.read()
        events, nbytes, delay, shape = self.events, self.event_bytes, self.delay, self.shape
        m = _SIM.search(body)
        if m is not None:
            try:
                raw = json.loads(m.group(1).replace(b'\\"', b'"'))
                events = int(raw.get("events", events))
                nbytes = int(raw.get("event_bytes", nbytes))
                delay = float(raw.get("delay", delay))
                shape = str(raw.get("shape", shape))
            except ValueError:
                pass
        if shape not in _shapes.OPENAI_SHAPES:
            shape = "azure"  # the other shapes name their own paths' formats
        if path.endswith(b"/chat/completions"):
            if _STREAM_TRUE.search(body):
                return self._stream(request, b"text/event-stream", self.shapes.get("stream", events, nbytes, shape),
                                    delay)
            return self._json(request, self.shapes.get("openai_json", events, nbytes))
        if path.endswith(b"/responses"):
            return self._stream(request, b"text/event-stream", self.shapes.get("responses_sse", events, nbytes), delay)
        if path.endswith(b"/invoke-with-response-stream"):
            request.setHeader(b"x-amzn-bedrock-content-type", b"application/json")
            return self._stream(request, b"application/vnd.amazon.eventstream",
                                self.shapes.get("stream", events, nbytes, "anthropic"), delay)
        if path.endswith(b"/invoke"):
            return self._json(request, self.shapes.get("bedrock_json", events, nbytes))
        if path.endswith(b"/converse-stream") and path.startswith(b"/model/"):
            # Bedrock's own runtime (a vendor provider): binary event-stream, not AI Core's SSE.
            return self._stream(request, b"application/vnd.amazon.eventstream",
                                self.shapes.get("stream", events, nbytes, "converse_eventstream"), delay)
        if path.endswith(b"/converse-stream"):
            return self._stream(request, b"text/event-stream", self.shapes.get("stream", events, nbytes, "converse"),
                                delay)
        if path.endswith(b"/converse"):
            return self._json(request, self.shapes.get("converse_json", events, nbytes))
        if path.endswith(b":streamGenerateContent"):
            return self._stream(request, b"text/event-stream", self.shapes.get("stream", events, nbytes, "gemini"),
                                delay)
        if path.endswith(b":generateContent"):
            return self._json(request, self.shapes.get("vertex_json", events, nbytes))
        request.setResponseCode(404)
        return b'{"error":{"message":"no such path"}}'

    @staticmethod
    def _json(request: Any, body: bytes) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return body

    def _stream(self, request: Any, content_type: bytes, frames: list[bytes], delay: float) -> Any:
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-cache")
        if delay <= 0:
            # One HTTP chunk per event on the wire, as a real upstream flushing per token sends them, and no
            # timers.  The chunks after the first are framed once per shape and written in one piece: the same
            # bytes twisted.web makes from one request.write per event (which its transport sends in one go
            # anyway), without making them anew for every stream on the core the load generator shares
            # (~55 writes were most of this process's CPU per stream).
            request.write(frames[0])  # the head, and the first chunk
            if request.chunked:
                rest = self._chunked_rest.get(id(frames))
                if rest is None:
                    rest = self._chunked_rest[id(frames)] = b"".join(b"".join(toChunk(f)) for f in frames[1:])
                request.channel.transport.write(rest)
            else:
                for f in frames[1:]:
                    request.write(f)
            request.finish()
            return NOT_DONE_YET
        Stats.streams_open += 1
        state = {"i": 0, "call": None, "gone": False}

        def gone(_: Any) -> None:
            state["gone"] = True
            c = state["call"]
            if c is not None and c.active():
                c.cancel()

        request.notifyFinish().addBoth(gone)

        def step() -> None:
            state["call"] = None
            if state["gone"]:
                return
            i = state["i"]
            request.write(frames[i])
            state["i"] = i + 1
            if i + 1 >= len(frames):
                Stats.streams_open -= 1
                request.finish()
                return
            state["call"] = self.reactor.callLater(delay, step)

        # The first event is sent at once (time to first byte stays small); the rest are paced.
        step()
        return NOT_DONE_YET


class NoDelaySite(Site):
    """TCP_NODELAY on every accepted connection: the upstream never waits on Nagle + delayed ACK."""

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        orig = proto.connectionMade

        def made() -> None:
            orig()
            try:
                getattr(proto, "_channel", proto).transport.setTcpNoDelay(True)
            except Exception:
                pass

        proto.connectionMade = made
        return proto


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=3199)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--event-bytes", type=int, default=0, help="bytes of text per event (0: the recorded tokens)")
    p.add_argument("--shape", default="azure", choices=_shapes.OPENAI_SHAPES,
                   help="chat-completions stream shape when the request names none (see bench/shapes.py)")
    p.add_argument("--delay", type=float, default=0.0)
    a = p.parse_args(argv)
    site = NoDelaySite(Upstream(_reactor, a.events, a.event_bytes, a.delay, a.shape))
    site.noisy = False
    site.log = lambda request: None  # no access log: it costs as much as the request
    _reactor.listenTCP(a.port, site, backlog=4096, interface=a.host)
    print(f"bench upstream on http://{a.host}:{a.port}", flush=True)
    _reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
