"""
Session affinity: the requests of one coding session go to the same deployment while it is healthy, so the
upstream's prompt cache stays warm (a cache hit is cheaper and faster for every turn after the first).

The choice is rendezvous hashing: every deployment gets a score from a hash of (session key, deployment URL),
and the session goes to the healthy deployment with the highest score.  It is a pure function of the session
key and the set of healthy deployments, so several gateway processes, or replicas behind one load balancer,
agree without sharing any state; and when a deployment leaves, only the sessions that were on it move.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from attrs import frozen

from sapproxy.config import AffinitySettings
from sapproxy.dispatch.picker import Deployment

#: Headers coding agents send with a per-session id: Claude Code, and Codex (both spellings seen).
SESSION_HEADERS = ("x-claude-code-session-id", "session-id", "session_id")


#: The header names looked at, as bytes, by the configured header (there is one per config).
_HEADER_NAMES: dict[str | None, tuple[bytes, ...]] = {}


def session_key(headers: Callable[[bytes], bytes | None], body: Any, settings: AffinitySettings) -> str | None:
    """
    The session a request belongs to: the configured header, an agent's own session header, or the body's
    C{prompt_cache_key} (Codex, and OpenAI clients that manage their cache); C{None} when there is none.
    """
    if not settings.enabled:
        return None
    names = _HEADER_NAMES.get(settings.header)
    if names is None:
        names = tuple(n.lower().encode("latin-1") for n in ((settings.header,) if settings.header else ())
                      + SESSION_HEADERS)
        if len(_HEADER_NAMES) < 64:
            _HEADER_NAMES[settings.header] = names
    for name in names:
        value = headers(name)
        if value:
            return value.decode("latin-1").strip()[:256] or None
    if isinstance(body, dict):
        key = body.get("prompt_cache_key")
        if isinstance(key, str) and key:
            return key[:256]
    return None


def score(key: str, deployment: Deployment) -> int:
    digest = hashlib.blake2b(f"{key}\0{deployment.url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@frozen
class SessionRoute:
    """
    A session's failover order: its healthy deployments by score, then the unhealthy ones by score.

    @ivar preferred: the top-scoring deployment of all, healthy or not: serving elsewhere is a move.
    """

    order: list[Deployment]
    preferred: Deployment

    def outcome(self, served: Deployment) -> str:
        return "hit" if served.url == self.preferred.url else "move"


def route(key: str, deployments: Sequence[Deployment], healthy: Callable[[Deployment], bool]) -> SessionRoute:
    ranked = sorted(deployments, key=lambda d: score(key, d), reverse=True)
    return SessionRoute([d for d in ranked if healthy(d)] + [d for d in ranked if not healthy(d)], ranked[0])


def session_route(request: Any, body: Any, deployments: Sequence[Deployment], healthy: Callable[[Deployment], bool],
                  settings: AffinitySettings) -> SessionRoute | None:
    """
    The session's route when the request belongs to a session and there is a choice to make.
    """
    if len(deployments) < 2 or request is None:
        return None
    key = session_key(request.getHeader, body, settings)
    return route(key, deployments, healthy) if key else None
