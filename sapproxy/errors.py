"""
Errors a client sees, rendered in the client's own dialect.

One L{GatewayError} describes what went wrong; the route that caught it renders it as OpenAI's
C{{"error": {...}}} or Anthropic's C{{"type": "error", "error": {...}}}, as a whole response body or, once a
stream has started, as an event inside it.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

# kind: (HTTP status, OpenAI error type, Anthropic error type)
_KINDS: dict[str, tuple[int, str, str]] = {
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "authentication": (401, "authentication_error", "authentication_error"),
    "permission": (403, "permission_error", "permission_error"),
    "not_found": (404, "not_found_error", "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error", "invalid_request_error"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit": (429, "rate_limit_error", "rate_limit_error"),
    "api_error": (500, "api_error", "api_error"),
    "bad_gateway": (502, "api_error", "api_error"),
    "overloaded": (503, "service_unavailable", "overloaded_error"),
    "timeout": (504, "timeout", "api_error"),
}


@frozen
class GatewayError(Exception):
    """
    @ivar kind: a key of C{_KINDS}: what sort of failure, independent of dialect.
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
        return self.status if self.status is not None else _KINDS[self.kind][0]

    @property
    def openai_type(self) -> str:
        return _KINDS[self.kind][1]

    @property
    def anthropic_type(self) -> str:
        return _KINDS[self.kind][2]

    def openai_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.openai_type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    def body(self, dialect: str) -> dict[str, Any]:
        return self.anthropic_body() if dialect == "anthropic" else self.openai_body()


def kind_for_status(status: int) -> str:
    """
    The kind of error an upstream's HTTP status stands for, to report it in the client's dialect.
    """
    if status == 400 or status == 422:
        return "invalid_request"
    for kind, (code, _, _) in _KINDS.items():
        if code == status:
            return kind
    if status == 529:
        return "overloaded"
    return "api_error" if status >= 500 else "invalid_request"
