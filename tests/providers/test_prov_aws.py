"""
Bedrock's request signing and credentials: the SigV4 signature equals botocore's own for a fixed clock and
key, and boto3's credential resolution runs on the dedicated thread, never on the reactor's.
"""

from __future__ import annotations

import calendar
import datetime
import threading
from typing import Any
from unittest import mock

import pytest
import pytest_twisted
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from twisted.internet import reactor as global_reactor

from sapproxy.upstreams.aws import (
    AwsCredentials, CredentialsError, FrozenCredentials, SigV4Signer, boto3_resolver, credentials_threadpool,
)

# AWS's documented example key pair (docs.aws.amazon.com, "Signature Version 4 test suite"): not a secret.
ACCESS = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)


def botocore_headers(url: str, body: bytes, headers: dict[str, str], token: str | None) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        SigV4Auth(Credentials(ACCESS, SECRET, token), "bedrock", "eu-central-1").add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@pytest.mark.parametrize("url, token", [
    ("https://bedrock-runtime.eu-central-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke", None),
    ("https://bedrock-runtime.eu-central-1.amazonaws.com/model/eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
     "FQoGZXIvYXdzEXAMPLETOKEN//////////wEaDA=="),
    ("http://127.0.0.1:8123/model/amazon.nova-pro-v1%3A0/invoke-with-response-stream", None),
])
def test_signature_equals_botocores(url: str, token: str | None) -> None:
    body = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":"hi \xc3\xa9"}]}'
    headers = {"content-type": "application/json", "accept": "application/json"}
    ours = SigV4Signer("eu-central-1").sign(FrozenCredentials(ACCESS, SECRET, token), url, body, headers,
                                             calendar.timegm(WHEN.utctimetuple()))
    theirs = botocore_headers(url, body, headers, token)
    assert ours["authorization"] == theirs["authorization"]
    assert ours["x-amz-date"] == theirs["x-amz-date"] == "20250304T050607Z"
    assert ours.get("x-amz-security-token") == theirs.get("x-amz-security-token")


def test_the_signing_key_is_derived_once_per_day() -> None:
    signer = SigV4Signer("us-east-1")
    creds = FrozenCredentials(ACCESS, SECRET)
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke"
    now = calendar.timegm(WHEN.utctimetuple())
    with mock.patch("hmac.new", wraps=__import__("hmac").new) as made:
        signer.sign(creds, url, b"{}", {}, now)
        cold = made.call_count
        signer.sign(creds, url, b"{}", {}, now + 60)
        assert made.call_count - cold == 1 and cold == 5


@pytest_twisted.ensureDeferred
async def test_credentials_resolve_on_the_dedicated_thread_once_for_many_waiters() -> None:
    threads: list[threading.Thread] = []
    release = threading.Event()

    def resolve() -> FrozenCredentials:
        threads.append(threading.current_thread())
        release.wait(5)
        return FrozenCredentials(ACCESS, SECRET, "tok", expires_at=global_reactor.seconds() + 3600)

    pool = credentials_threadpool()
    creds = AwsCredentials("aws", resolve, global_reactor, pool)
    try:
        waiting = [creds.get() for _ in range(5)]
        assert not any(d.called for d in waiting)  # the reactor did not block on the resolution
        release.set()
        got = [await d for d in waiting]
        assert {c.token for c in got} == {"tok"}
        assert threads and threads[0] is not threading.current_thread()
        assert "sapproxy-aws-credentials" in threads[0].name
        assert creds.resolutions == 1 and len(threads) == 1
        # Cached: answered at once, no second resolution.
        cached = creds.get()
        assert cached.called and creds.resolutions == 1
        assert creds.state()["credentials"] == "valid"
    finally:
        pool.stop()


@pytest_twisted.ensureDeferred
async def test_boto3_chain_from_the_environment_off_the_reactor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    real = boto3_resolver(None, None, "eu-central-1")
    seen: list[threading.Thread] = []

    def resolve() -> FrozenCredentials:
        seen.append(threading.current_thread())
        return real()

    pool = credentials_threadpool()
    try:
        got = await AwsCredentials("aws", resolve, global_reactor, pool).get()
    finally:
        pool.stop()
    assert (got.access_key, got.secret_key, got.token) == (ACCESS, SECRET, "session-token")
    assert seen[0] is not threading.main_thread()
    assert SECRET not in repr(got)


@pytest_twisted.ensureDeferred
async def test_no_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pool = credentials_threadpool()
    creds = AwsCredentials("aws", boto3_resolver(None, None, "eu-central-1"), global_reactor, pool)
    try:
        with pytest.raises(CredentialsError, match="no AWS credentials found"):
            await creds.get()
    finally:
        pool.stop()
    assert creds.state()["credentials"] == "none" and "no AWS credentials" in str(creds.state()["last_error"])
