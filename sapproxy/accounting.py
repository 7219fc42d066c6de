"""
What every finished request leaves behind: one usage row, metrics, and one structured log line.

Called from the route's C{finally}, so a request the client abandoned, one that failed, and one that never
reached an upstream are all accounted for.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger

from sapproxy.dispatch.forward import RequestContext
from sapproxy.translate.estimate import CHARS_PER_TOKEN, completion_tokens, estimated_usage, prompt_tokens
from sapproxy.translate.usage import Usage

log = Logger(namespace="sapproxy.request")


class Accounting:
    def __init__(self, clock: Any, *, metrics: Any = None, store: Any = None) -> None:
        self._clock = clock
        self._metrics = metrics
        self._store = store

    def finished(self, ctx: RequestContext) -> None:
        end = self._clock.seconds()
        latency = end - ctx.started
        ttfb = (ctx.first_byte_at - ctx.started) if ctx.first_byte_at is not None else None
        usage = ctx.usage
        if usage is None or (usage.total_tokens == 0 and ctx.output_chars):
            usage = (estimated_usage(prompt_tokens(ctx.dialect, ctx.body, ctx.family), ctx.output_chars)
                     if ctx.reached_upstream and isinstance(ctx.body, dict) else Usage())
            ctx.usage = usage
        elif usage.completion_tokens <= 1 and ctx.output_chars > 2 * CHARS_PER_TOKEN:
            # Only a stream's opening placeholder (Anthropic's message_start says output_tokens 1) arrived:
            # the prompt count is the upstream's, the completion ours.
            usage = ctx.usage = attrs.evolve(usage, completion_tokens=completion_tokens(ctx.output_chars),
                                             estimated=True)
        identity = ctx.identity
        # Only configured model names label metrics: a client's free text must not create series.
        model = ctx.model_resolved or "unknown"
        if self._metrics is not None:
            self._metrics.request_finished(ctx.endpoint, model, ctx.subaccount, ctx.status, latency, ttfb, ctx.stream)
            if usage.total_tokens:
                self._metrics.tokens(model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        if self._store is not None and (ctx.reached_upstream or ctx.model_requested):
            from sapproxy.usage import UsageRecord

            self._store.record(UsageRecord(
                time=ctx.started_wall, request_id=ctx.request_id,
                key_id=identity.key_id if identity else "-", key_name=identity.name if identity else "-",
                dialect=ctx.dialect, endpoint=ctx.endpoint, model_requested=ctx.model_requested,
                model_resolved=ctx.model_resolved, subaccount=ctx.subaccount, deployment=ctx.deployment,
                stream=ctx.stream, status=ctx.status, error_type=ctx.error_type,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens, tokens_estimated=usage.estimated,
                latency_ms=round(latency * 1000, 3), ttfb_ms=round(ttfb * 1000, 3) if ttfb is not None else None,
                attempts=ctx.attempts, failovers=ctx.failovers, client_hung_up=ctx.client_hung_up,
                user_agent=ctx.user_agent[:300],
            ))
        # The line is rendered here (braces escaped) rather than from a format with fields: twisted's formatter
        # would parse the format for every request, a third of the line's cost.  Its fields are still in the
        # event for the JSON observer.
        line = f"{ctx.method} {ctx.endpoint} {ctx.status} {ctx.model_requested or '-'} {latency * 1000:.1f}ms"
        if "{" in line or "}" in line:
            line = line.replace("{", "{{").replace("}", "}}")
        log.info(
            line,
            method=ctx.method, endpoint=ctx.endpoint, status=ctx.status, model=ctx.model_requested or "-",
            latency_ms=round(latency * 1000, 1), request_id=ctx.request_id, key=identity.name if identity else "-",
            resolved=ctx.model_resolved, subaccount=ctx.subaccount, deployment=ctx.deployment, stream=ctx.stream,
            error_type=ctx.error_type, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            attempts=ctx.attempts, failovers=ctx.failovers, client_hung_up=ctx.client_hung_up,
        )
