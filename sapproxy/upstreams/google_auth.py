"""
OAuth tokens for Vertex AI from a service account key file, with the optional C{google-auth} package.

google-auth signs the service account's JWT and exchanges it for an access token with a blocking HTTP call,
so, as for AWS credentials, the exchange runs on the one credentials thread (L{sapproxy.upstreams.aws}), never
on the reactor; the token is cached until shortly before it expires and refreshed ahead of that.
"""

from __future__ import annotations

import calendar
from typing import Any, Callable

from sapproxy.upstreams.aws import CredentialsError, FrozenCredentials

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def service_account_resolver(path: str) -> Callable[[], FrozenCredentials]:
    """
    A blocking function that returns a fresh access token (as L{FrozenCredentials}: the token is the secret).
    """
    state: dict[str, Any] = {}

    def resolve() -> FrozenCredentials:
        try:
            import urllib3
            from google.auth.exceptions import GoogleAuthError
            from google.auth.transport.urllib3 import Request
            from google.oauth2 import service_account
        except ImportError:
            raise CredentialsError("Vertex AI needs the google-auth package") from None
        try:
            creds = state.get("creds")
            if creds is None:
                creds = state["creds"] = service_account.Credentials.from_service_account_file(path, scopes=[SCOPE])
                state["http"] = urllib3.PoolManager(retries=False, timeout=30.0)
            creds.refresh(Request(state["http"]))
        except (GoogleAuthError, OSError, ValueError) as e:
            # google-auth's messages carry the token endpoint's answer, never the key.
            first = (str(e).splitlines() or [""])[0][:200]
            raise CredentialsError(f"{type(e).__name__}: {first}") from None
        expiry = creds.expiry
        expires_at = float(calendar.timegm(expiry.utctimetuple())) if expiry is not None else None
        return FrozenCredentials("oauth2", creds.token, None, expires_at)

    return resolve
