"""
Signing in to the admin page: the configured C{admin_token} is typed into a form (POSTed, so never in a URL,
and request bodies of the admin page are never logged); a session cookie (random, HttpOnly, SameSite=Strict,
scoped to C{/admin}) carries the sign-in; every form carries the session's CSRF token.

Sessions live in the gateway process's memory: a restart signs everyone out, which suits a page for a few
operators.  A session also ends when C{admin_token} changes (a config reload), and after L{SESSION_SECONDS}.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from attrs import define

COOKIE = b"sapproxy_admin"
SESSION_SECONDS = 8 * 3600
#: Failed sign-ins allowed per minute, from anyone, before the form answers 429 for the rest of the minute.
FAILURES_PER_MINUTE = 10


@define
class Session:
    csrf: str
    token_digest: bytes
    expires: float
    flash: str = ""


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Sessions:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: list[float] = []

    def sign_in(self, presented: str, configured: str) -> str | None:
        """
        A new session id if C{presented} is the configured token, else L{None} (and a failure counted).
        """
        if not hmac.compare_digest(token_digest(presented), token_digest(configured)):
            self._failures.append(self._clock.seconds())
            return None
        self._expire()
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(csrf=secrets.token_urlsafe(32), token_digest=token_digest(configured),
                                      expires=self._clock.seconds() + SESSION_SECONDS)
        return sid

    def locked_out(self) -> bool:
        now = self._clock.seconds()
        self._failures = [t for t in self._failures if t > now - 60]
        return len(self._failures) >= FAILURES_PER_MINUTE

    def find(self, sid: bytes | None, configured: str) -> Session | None:
        """
        The live session the cookie names, signed in with the token configured now.
        """
        if not sid:
            return None
        session = self._sessions.get(sid.decode("latin-1"))
        if session is None:
            return None
        if session.expires <= self._clock.seconds() or not hmac.compare_digest(session.token_digest,
                                                                                  token_digest(configured)):
            self._sessions.pop(sid.decode("latin-1"), None)
            return None
        return session

    def sign_out(self, sid: bytes | None) -> None:
        if sid:
            self._sessions.pop(sid.decode("latin-1"), None)

    def _expire(self) -> None:
        now = self._clock.seconds()
        for sid in [s for s, v in self._sessions.items() if v.expires <= now]:
            del self._sessions[sid]


def csrf_ok(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), given.encode())
