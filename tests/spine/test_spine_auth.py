"""
Client authentication: plain and sha256 tokens, both header forms, keys from the store, auth off.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sapproxy.auth import ANONYMOUS, Authenticator, presented_token


def test_presented_token_from_either_header() -> None:
    assert presented_token(b"Bearer abc", None) == "abc"
    assert presented_token(b"bearer  abc ", None) == "abc"
    assert presented_token(None, b"abc") == "abc"
    assert presented_token(b"Basic xyz", None) is None
    assert presented_token(b"Bearer ", b"") is None


def test_plain_and_sha256_tokens_match_exactly() -> None:
    digest = hashlib.sha256(b"second").hexdigest()
    auth = Authenticator(["first", f"sha256:{digest}"])
    assert auth.identify("first").name == "config#0"  # type: ignore[union-attr]
    assert auth.identify("second").name == "config#1"  # type: ignore[union-attr]
    assert auth.identify("second").key_id == digest[:12]  # type: ignore[union-attr]
    for wrong in ("firs", "first ", "FIRST", "secondx", "", f"sha256:{digest}"):
        assert auth.identify(wrong) is None
    assert auth.identify(None) is None


class Ring:
    def __init__(self, records: dict[str, Any], loaded: bool = True) -> None:
        self.records = records
        self.loaded = loaded
        self.held = bool(records)

    def lookup(self, token: str) -> Any:
        return self.records.get(token)

    @property
    def holds_no_keys(self) -> bool:
        return self.loaded and not self.held


class Record:
    name, key_id, rpm, tpm, models = "ci", "abcdef012345", 10, None, ("gpt-4.1",)


def test_keys_from_the_store_work_beside_configured_tokens() -> None:
    auth = Authenticator(["first"], Ring({"sk-sap-x": Record()}))
    who = auth.identify("sk-sap-x")
    assert who is not None and (who.name, who.rpm, who.models) == ("ci", 10, ("gpt-4.1",))
    assert auth.identify("sk-sap-y") is None


def test_no_tokens_and_no_keys_disables_auth_until_a_key_exists() -> None:
    ring = Ring({})
    auth = Authenticator([], ring)
    assert auth.disabled and auth.identify(None) is ANONYMOUS
    ring.records["k"] = Record()
    ring.held = True
    assert not auth.disabled and auth.identify(None) is None
    # Revoking the last key keeps authentication on.
    ring.records.clear()
    assert not auth.disabled and auth.identify(None) is None and auth.identify("k") is None


def test_no_anonymous_window_before_the_store_is_read() -> None:
    auth = Authenticator([], Ring({}, loaded=False))
    assert not auth.disabled and auth.identify(None) is None
