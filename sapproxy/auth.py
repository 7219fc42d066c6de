"""
Who is calling: client credentials checked against configured tokens and the key store.

Configured tokens may be written in plain text or as C{sha256:<hex>}.  Either way the presented token is
hashed once and compared against every configured digest with L{hmac.compare_digest}, without stopping at
the first match, so neither the content nor the position of a valid token leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Iterable, Protocol

from attrs import frozen


@frozen
class ClientIdentity:
    """
    An authenticated caller.

    @ivar key_id: the first 12 hex digits of the sha256 of its key: enough to tell keys apart in logs and
        usage rows, useless to an attacker.
    @ivar name: a name for people: the key's name in the store, or C{config#N} for the N-th configured token.
    @ivar rpm: requests per minute allowed, or L{None} for no limit.
    @ivar tpm: tokens per minute allowed, or L{None}.
    @ivar models: the model names this key may use, or L{None} for all.
    """

    key_id: str
    name: str
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] | None = None


ANONYMOUS = ClientIdentity(key_id="-", name="anonymous")


class KeyLookup(Protocol):
    """
    The key store's hot-path face (L{sapproxy.usage.KeyRing}): a synchronous lookup of a presented key,
    returning its record (with C{name}, C{key_id}, C{rpm}, C{tpm}, C{models}) or L{None}.
    """

    def lookup(self, presented_token: str) -> Any: ...

    @property
    def holds_no_keys(self) -> bool: ...


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _configured_digest(token: str) -> bytes:
    if token.startswith("sha256:"):
        return bytes.fromhex(token[7:].strip())
    return hashlib.sha256(token.encode("utf-8")).digest()


def presented_token(authorization: bytes | None, api_key: bytes | None) -> str | None:
    """
    The token a client sent: C{Authorization: Bearer <t>} or C{x-api-key: <t>} (Anthropic's SDK).
    """
    if authorization:
        scheme, _, value = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key:
        value = api_key.decode("latin-1").strip()
        if value:
            return value
    return None


class Authenticator:
    """
    Decide whether a presented token is valid, and whose it is.
    """

    def __init__(self, tokens: Iterable[str], keys: KeyLookup | None = None) -> None:
        self._digests = [_configured_digest(t) for t in tokens]
        #: The identity of each configured token, made once: a frozen attrs instance per request was a third
        #: of what identifying a caller cost.
        self._identities = [ClientIdentity(key_id=d.hex()[:12], name=f"config#{i}")
                            for i, d in enumerate(self._digests)]
        self._keys = keys

    @property
    def disabled(self) -> bool:
        """
        No configured token, and a key store that was read and never held a key: every caller is let in
        (start-up warns loudly).  The first key created with C{sapproxy-admin} turns authentication on
        without a restart, and it stays on when that key is revoked or expires.  Until the store has been
        read, authentication is on (no anonymous window at start-up).
        """
        return not self._digests and (self._keys is None or self._keys.holds_no_keys)

    def identify(self, token: str | None) -> ClientIdentity | None:
        if not self._digests and self.disabled:
            return ANONYMOUS
        if token is None:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        matched = -1
        for index, configured in enumerate(self._digests):
            if hmac.compare_digest(presented, configured) and matched < 0:
                matched = index
        if matched >= 0:
            return self._identities[matched]
        if self._keys is not None:
            record = self._keys.lookup(token)
            if record is not None:
                return ClientIdentity(key_id=record.key_id, name=record.name, rpm=record.rpm, tpm=record.tpm,
                                      models=record.models)
        return None
