"""
OpenTelemetry: a server span per request continuing the client's trace, child spans for the token fetch and
each upstream attempt, and the upstream attempt's context sent upstream as traceparent.
"""

from __future__ import annotations

import pytest

from app_harness import Harness
from sapproxy.tracing import Tracing, make_tracing

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is a test extra")


def test_spans_and_propagation() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    h = Harness()
    h.gateway.tracing = Tracing(provider.get_tracer("test"))
    client_trace = "0af7651916cd43dd8448eb211c80319c"
    response, _ = h.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]},
                         headers={"traceparent": f"00-{client_trace}-b7ad6b7169203331-01"})
    assert response.code == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /v1/chat/completions", "sap.token", "upstream /chat/completions"}
    server, token, upstream = (spans["POST /v1/chat/completions"], spans["sap.token"],
                               spans["upstream /chat/completions"])
    assert {format(s.context.trace_id, "032x") for s in spans.values()} == {client_trace}
    assert format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert token.parent.span_id == server.context.span_id == upstream.parent.span_id
    assert upstream.attributes["http.status_code"] == 200 and server.attributes["http.status_code"] == 200
    sent = [r for r in h.simulator.requests if "/chat/completions" in r["path"]][-1]["headers"]["traceparent"]
    assert sent == f"00-{client_trace}-{format(upstream.context.span_id, '016x')}-01"


def test_off_unless_configured() -> None:
    assert not make_tracing(None).enabled
    assert Tracing(None).request("x", None) is None
