"""
What every finished request leaves behind: one usage row, metrics, and one structured log line.

Called from the route's C{finally}, so a request the client abandoned, one that failed, and one that never
reached an upstream are all accounted for.
"""

from __future__ import annotations

from typing import Any

import attrs

from sapproxy.logs import QuickLogger
from sapproxy.record import RequestRecord
from sapproxy.translate.estimate import CHARS_PER_TOKEN, completion_tokens, estimated_usage
from sapproxy.translate.usage import Usage

log = QuickLogger(namespace="sapproxy.request")


class Accounting:
    def __init__(self, clock: Any, *, metrics: Any = None, store: Any = None) -> None:
        self._clock = clock
        self._metrics = metrics
        self._store = store

    def finished(self, record: RequestRecord) -> Usage:
        """
        Account for a finished request; the usage it was charged (the upstream's, or an estimate).
        """
        end = self._clock.seconds()
        outcome = record.outcome
        latency = end - record.started
        ttfb = (outcome.first_byte_at - record.started) if outcome.first_byte_at is not None else None
        usage = outcome.usage
        if usage is None or (usage.total_tokens == 0 and outcome.output_chars):
            usage = (estimated_usage(record.call.prompt_tokens(record.family), outcome.output_chars)
                     if outcome.reached_upstream and record.call is not None else Usage())
        elif usage.completion_tokens <= 1 and outcome.output_chars > 2 * CHARS_PER_TOKEN:
            # Only a stream's opening placeholder (Anthropic's message_start says output_tokens 1) arrived:
            # the prompt count is the upstream's, the completion ours.
            usage = attrs.evolve(usage, completion_tokens=completion_tokens(outcome.output_chars), estimated=True)
        identity = record.identity
        error_type = record.error_type or outcome.error_type
        # Only configured model names label metrics: a client's free text must not create series.
        model = record.model_resolved or "unknown"
        if self._metrics is not None:
            self._metrics.request_finished(record.endpoint, model, outcome.provider, record.status, latency, ttfb,
                                           record.stream)
            if usage.total_tokens:
                self._metrics.tokens(model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        if self._store is not None and (outcome.reached_upstream or record.model_requested):
            from sapproxy.usage import UsageRecord

            self._store.record(UsageRecord(
                time=record.started_wall, request_id=record.request_id,
                key_id=identity.key_id if identity else "-", key_name=identity.name if identity else "-",
                dialect=record.client, endpoint=record.endpoint, model_requested=record.model_requested,
                model_resolved=record.model_resolved, subaccount=outcome.provider, deployment=outcome.deployment,
                stream=record.stream, status=record.status, error_type=error_type,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens, tokens_estimated=usage.estimated,
                latency_ms=round(latency * 1000, 3), ttfb_ms=round(ttfb * 1000, 3) if ttfb is not None else None,
                attempts=outcome.attempts, failovers=outcome.failovers, client_hung_up=outcome.client_hung_up,
                user_agent=record.user_agent[:300],
            ))
        # The line is rendered here (braces escaped) rather than from a format with fields: twisted's formatter
        # would parse the format for every request, a third of the line's cost.  Its fields are still in the
        # event for the JSON observer.
        line = f"{record.method} {record.endpoint} {record.status} {record.model_requested or '-'} {latency * 1000:.1f}ms"
        if outcome.provider:
            # Which upstream served (or last failed) it, and whether it fell over to get there.
            line += f" via {outcome.provider}" + (f" after {outcome.failovers} failover(s)" if outcome.failovers else "")
        if "{" in line or "}" in line:
            line = line.replace("{", "{{").replace("}", "}}")
        log.info(
            line,
            method=record.method, endpoint=record.endpoint, status=record.status, model=record.model_requested or "-",
            latency_ms=round(latency * 1000, 1), request_id=record.request_id, key=identity.name if identity else "-",
            resolved=record.model_resolved, subaccount=outcome.provider, deployment=outcome.deployment,
            stream=record.stream, error_type=error_type, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, attempts=outcome.attempts, failovers=outcome.failovers,
            client_hung_up=outcome.client_hung_up,
        )
        return usage
