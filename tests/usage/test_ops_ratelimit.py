"""
Rate limits: the in-process limiter on a L{task.Clock}, the choice of limiter from C{redis_url}, and that URL
read and checked (the Redis limiter against a real Redis: test_ops_ratelimit_redis.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from sapproxy.config import ConfigError, load_config
from sapproxy.ratelimit import Decision, IRateLimiter, make_rate_limiter
from sapproxy.ratelimit.address import RedisAddress, parse_redis_url
from sapproxy.ratelimit.memory import InProcessRateLimiter
from sapproxy.ratelimit.redis import RedisRateLimiter


def result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


# --- in process ------------------------------------------------------------------------------------------------


def test_rpm_window_slides() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    for _ in range(3):
        assert result(limiter.check("k", 3, None)).allowed
        clock.advance(10)
    # Requests at t=0, 10, 20; now t=30.
    refused = result(limiter.check("k", 3, None))
    assert refused == Decision(False, 30.0, "rpm")  # the t=0 request leaves the window at t=60
    assert result(limiter.check("other", 3, None)).allowed  # per key
    clock.advance(29.9)
    assert not result(limiter.check("k", 3, None)).allowed
    clock.advance(0.1)  # t=60: the first request is out
    assert result(limiter.check("k", 3, None)).allowed
    d = result(limiter.check("k", 3, None))
    assert d.reason == "rpm" and d.retry_after == pytest.approx(10.0)  # next out: t=10's at t=70


def test_refused_requests_are_not_counted() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", 1, None)).allowed
    for _ in range(10):
        assert not result(limiter.check("k", 1, None)).allowed
    clock.advance(60)
    assert result(limiter.check("k", 1, None)).allowed


def test_tpm() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", None, 1000)).allowed
    limiter.add_tokens("k", 600)
    clock.advance(20)
    assert result(limiter.check("k", None, 1000)).allowed  # 600 < 1000
    limiter.add_tokens("k", 500)
    clock.advance(5)  # t=25; 1100 spent in the window
    refused = result(limiter.check("k", None, 1000))
    assert refused.reason == "tpm" and refused.retry_after == pytest.approx(35.0)  # the 600 expire at t=60
    clock.advance(35)
    assert result(limiter.check("k", None, 1000)).allowed  # 500 left
    assert result(limiter.check("k", None, None)).allowed  # unlimited key


def test_rpm_and_tpm_together() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", 10, 100)).allowed
    limiter.add_tokens("k", 100)
    assert result(limiter.check("k", 10, 100)).reason == "tpm"


def test_disconnect_keeps_the_windows() -> None:
    clock = Clock()
    limiter = InProcessRateLimiter(clock)
    assert result(limiter.check("k", 1, None)).allowed
    assert result(limiter.disconnect()) is None
    assert not result(limiter.check("k", 1, None)).allowed


# --- choosing and addressing -----------------------------------------------------------------------------------


def test_make_rate_limiter() -> None:
    memory = make_rate_limiter(None, Clock())
    assert isinstance(memory, InProcessRateLimiter) and verifyObject(IRateLimiter, memory)
    assert isinstance(make_rate_limiter("", Clock()), InProcessRateLimiter)
    shared = make_rate_limiter("redis://alice:s%40cret@redis.internal:6380/3", reactor)
    assert isinstance(shared, RedisRateLimiter) and verifyObject(IRateLimiter, shared)
    assert shared.database == 3
    assert shared.address == RedisAddress("redis.internal", 6380, 3, "alice", "s@cret")
    assert not shared.connected and shared.local_address is None  # lazy: nothing opened yet
    assert "s@cret" not in repr(shared.address)
    with pytest.raises(ValueError):
        make_rate_limiter("http://x", reactor)


@pytest.mark.parametrize("url, address", [
    ("redis://", RedisAddress()),
    ("redis://127.0.0.1:6379/0", RedisAddress()),
    ("redis://cache/12", RedisAddress("cache", 6379, 12)),
    ("redis://:pw@cache:7000", RedisAddress("cache", 7000, 0, None, "pw")),
    ("redis://gw:p%3Aw%2F@cache/1", RedisAddress("cache", 6379, 1, "gw", "p:w/")),
    ("redis://[::1]:6379/2", RedisAddress("::1", 6379, 2)),
])
def test_redis_url(url: str, address: RedisAddress) -> None:
    assert parse_redis_url(url) == address


@pytest.mark.parametrize("url, message", [
    ("rediss://cache", "TLS to Redis is not supported yet"),
    ("http://cache", "starts with redis://"),
    ("cache:6379", "starts with redis://"),
    ("redis://cache:99999", "port"),
    ("redis://cache:port/0", "port"),
    ("redis://cache/zero", "database of the Redis URL is a number"),
    ("redis://cache/0?timeout=1", "no query"),
    ("redis://gw@cache/0", "names a user but no password"),
    ("redis://gw:@cache/0", "names a user but no password"),
])
def test_bad_redis_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


def test_bad_redis_url_is_a_config_error_without_the_password(tmp_path: Path) -> None:
    key = {"clientid": "c", "clientsecret": "s", "url": "https://auth.example", "identityzoneid": "zone",
           "serviceurls": {"AI_API_URL": "https://api.example"}}
    config = {"service_key_json": key, "deployment_models": {"m": "https://api.example/v2/inference/deployments/d"},
              "redis_url": "redis://gw:hunter2@cache/first"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="redis_url") as caught:
        load_config(path)
    assert "database of the Redis URL is a number" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    config["redis_url"] = "redis://gw:hunter2@cache/4"
    path.write_text(json.dumps(config))
    assert load_config(path).redis_url == "redis://gw:hunter2@cache/4"
