"""
Errors a client sees, independent of dialect.

One L{GatewayError} describes what went wrong (its kind, message, status); the client API of the route that
caught it renders it in its own dialect (L{sapproxy.interfaces.IClientAPI.error_body}), as a whole response
body or, once a stream has started, as an event inside it.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

#: kind -> its HTTP status.  Each client API maps kinds to its own error types.
KINDS: dict[str, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_too_large": 413,
    "rate_limit": 429,
    "api_error": 500,
    "bad_gateway": 502,
    "overloaded": 503,
    "timeout": 504,
}


@frozen
class GatewayError(Exception):
    """
    @ivar kind: a key of C{KINDS}: what sort of failure, independent of dialect.
    @ivar message: for a person; names what is wrong and never contains a secret.
    @ivar status: the HTTP status, when it should differ from the kind's default (an upstream's own status).
    @ivar code: OpenAI's machine-readable C{code}, where one fits.
    @ivar param: the offending request field, where there is one.
    @ivar retry_after: seconds, sent as C{Retry-After}.
    """

    kind: str
    message: str
    status: int | None = None
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else KINDS[self.kind]


def kind_for_status(status: int) -> str:
    """
    The kind of error an upstream's HTTP status stands for, to report it in the client's dialect.
    """
    if status == 400 or status == 422:
        return "invalid_request"
    for kind, code in KINDS.items():
        if code == status:
            return kind
    if status == 529:
        return "overloaded"
    return "api_error" if status >= 500 else "invalid_request"
