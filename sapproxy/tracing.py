"""
OpenTelemetry tracing, when configured and its packages are installed; nothing at all otherwise.

One server span per client request (continuing the client's W3C C{traceparent} when it sent one), a child
span for each token fetch that request waited for and for each upstream attempt; the upstream attempt's
context is sent upstream as C{traceparent}, so SAP AI Core's side of a trace joins ours.

Spans are started and ended explicitly rather than through context managers: a request's work is spread
over reactor turns, so an ambient "current span" would belong to whichever request ran last.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

log = Logger()


class Tracing:
    """
    @param tracer: an OpenTelemetry tracer, or L{None} for no tracing (every method is then a cheap no-op).
    """

    def __init__(self, tracer: Any = None) -> None:
        self._tracer = tracer
        if tracer is not None:
            from opentelemetry.trace import SpanKind, set_span_in_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            self._kinds = SpanKind
            self._in_context = set_span_in_context
            self._propagator = TraceContextTextMapPropagator()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def request(self, name: str, traceparent: str | None) -> Any:
        if self._tracer is None:
            return None
        parent = self._propagator.extract({"traceparent": traceparent}) if traceparent else None
        return self._tracer.start_span(name, context=parent, kind=self._kinds.SERVER)

    def child(self, parent: Any, name: str, *, client: bool = False, **attributes: Any) -> Any:
        if self._tracer is None or parent is None:
            return None
        span = self._tracer.start_span(name, context=self._in_context(parent),
                                       kind=self._kinds.CLIENT if client else self._kinds.INTERNAL)
        for key, value in attributes.items():
            span.set_attribute(key, value)
        return span

    def traceparent(self, span: Any) -> str | None:
        """
        The W3C header that makes C{span} the parent of the upstream's work.
        """
        if span is None:
            return None
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span))
        return carrier.get("traceparent")

    @staticmethod
    def end(span: Any, **attributes: Any) -> None:
        if span is None:
            return
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
        span.end()


def make_tracing(settings: Any) -> Tracing:
    """
    A L{Tracing} for the config's C{tracing} settings: an OTLP/HTTP exporter to C{endpoint}, or spans printed
    to the log with C{"exporter": "console"}.  Missing packages are a warning, not a failure.
    """
    if settings is None:
        return Tracing(None)
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warn("tracing is configured but opentelemetry-sdk is not installed: pip install opentelemetry-sdk")
        return Tracing(None)
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.exporter == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warn("tracing exporter otlp needs opentelemetry-exporter-otlp-proto-http; tracing is off")
            return Tracing(None)
        exporter = OTLPSpanExporter(endpoint=settings.endpoint)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider.get_tracer("sapproxy"))
