"""
Gateway metrics: they move, they parse as Prometheus text, they stay apart per instance, and they are cheap.
"""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from sapproxy.metrics import GatewayMetrics


def samples(m: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_move_and_parse() -> None:
    m = GatewayMetrics(version="1.2.3")
    m.request_finished("/v1/chat/completions", "gpt-4o", "acct1", 200, 1.5, 0.3, True)
    m.request_finished("/v1/chat/completions", "gpt-4o", "acct1", 200, 0.04, None, False)
    m.request_finished("/v1/messages", "claude", "acct2", 429, 0.2, 0.1, False)
    m.tokens("gpt-4o", 100, 20, 5)
    m.tokens("gpt-4o", 1, 0, 0)
    m.upstream_error("acct1", "timeout")
    m.failover("gpt-4o")
    m.stream_opened()
    m.stream_opened()
    m.stream_closed()
    m.token_refresh("acct1", "ok")
    m.rate_limited("team-a", "rpm")
    m.usage_rows_dropped(3)
    s = samples(m)
    req = ("sapproxy_requests_total",
           (("endpoint", "/v1/chat/completions"), ("model", "gpt-4o"), ("status", "200"), ("subaccount", "acct1")))
    assert s[req] == 2
    assert s[("sapproxy_requests_total", (("endpoint", "/v1/messages"), ("model", "claude"), ("status", "429"),
                                          ("subaccount", "acct2")))] == 1
    lat = (("endpoint", "/v1/chat/completions"), ("model", "gpt-4o"), ("stream", "true"))
    assert s[("sapproxy_request_duration_seconds_count", lat)] == 1
    assert s[("sapproxy_request_duration_seconds_sum", lat)] == 1.5
    def bucket(le: str) -> float:
        return s[("sapproxy_request_duration_seconds_bucket", tuple(sorted(lat + (("le", le),))))]

    assert bucket("1.0") == 0 and bucket("2.0") == 1 and bucket("600.0") == 1 and bucket("+Inf") == 1
    nolat = (("endpoint", "/v1/chat/completions"), ("model", "gpt-4o"), ("stream", "false"))
    assert s[("sapproxy_time_to_first_byte_seconds_count", nolat)] == 0  # no byte, no observation
    assert s[("sapproxy_time_to_first_byte_seconds_count", lat)] == 1
    assert s[("sapproxy_tokens_total", (("direction", "prompt"), ("model", "gpt-4o")))] == 101
    assert s[("sapproxy_tokens_total", (("direction", "completion"), ("model", "gpt-4o")))] == 20
    assert s[("sapproxy_tokens_total", (("direction", "cached"), ("model", "gpt-4o")))] == 5
    assert s[("sapproxy_upstream_errors_total", (("kind", "timeout"), ("subaccount", "acct1")))] == 1
    assert s[("sapproxy_failovers_total", (("model", "gpt-4o"),))] == 1
    assert s[("sapproxy_active_streams", ())] == 1
    assert s[("sapproxy_token_refreshes_total", (("outcome", "ok"), ("subaccount", "acct1")))] == 1
    assert s[("sapproxy_rate_limited_total", (("key_name", "team-a"), ("reason", "rpm")))] == 1
    assert s[("sapproxy_usage_rows_dropped_total", ())] == 3
    assert s[("sapproxy_build_info", (("version", "1.2.3"),))] == 1


def test_instances_do_not_share_counters() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.failover("m")
    assert ("sapproxy_failovers_total", (("model", "m"),)) in samples(a)
    assert ("sapproxy_failovers_total", (("model", "m"),)) not in samples(b)


def test_per_request_cost() -> None:
    """
    A request_finished + tokens pair costs a few microseconds once the label children are cached.
    """
    m = GatewayMetrics()
    n = 20_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            m.request_finished("/v1/chat/completions", "gpt-4o", "acct1", 200, 1.5, 0.3, True)
            m.tokens("gpt-4o", 100, 20, 5)
        best = min(best, (time.perf_counter() - start) / n)
    print(f"request_finished + tokens: {best * 1e6:.2f} us")
    assert best < 50e-6, best  # loose, for slow CI machines; measured ~3 us here
