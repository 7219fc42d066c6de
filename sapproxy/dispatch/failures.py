"""
What an upstream failure means: which network errors there are, which of them are the client leaving, and an
upstream's error response in the gateway's own terms.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet.defer import CancelledError, TimeoutError as DeferredTimeoutError
from twisted.internet.error import (
    ConnectError, ConnectingCancelledError, ConnectionClosed, DNSLookupError, TimeoutError,
)
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from sapproxy.compat import RequestGenerationFailed, RequestTransmissionFailed
from sapproxy.errors import GatewayError, kind_for_status
from sapproxy.dispatch.guards import retry_after_seconds

# Everything an upstream request can fail with before a response: connecting, sending, waiting for headers.
# (twisted.web's _newclient wraps its causes in _WrapperException subclasses that share no useful base.)
NETWORK_ERRORS = (ConnectError, ConnectingCancelledError, ConnectionClosed, DNSLookupError, TimeoutError,
                  DeferredTimeoutError, ResponseFailed, ResponseNeverReceived, RequestGenerationFailed,
                  RequestTransmissionFailed)


class HeadersTimeout(TimeoutError):
    """
    The upstream did not send its response headers within C{timeouts.headers}.

    Raised in place of the cancellation the timeout causes, so that it is never mistaken for the client
    hanging up (which also cancels the request).
    """


def stale_connection(e: Exception) -> bool:
    """
    The request could not be sent: most often a pooled connection the upstream had closed meanwhile.
    """
    return isinstance(e, RequestTransmissionFailed)


def cancelled(e: Exception) -> bool:
    """
    The network error is the request's own cancellation (the client went away), not the upstream's fault.
    """
    if isinstance(e, HeadersTimeout):
        return False
    if isinstance(e, ConnectingCancelledError):
        return True
    reasons = getattr(e, "reasons", None) or []
    return any(getattr(r, "check", lambda *_: False)(CancelledError) for r in reasons)


def network_error(e: Exception) -> GatewayError:
    if isinstance(e, (TimeoutError, DeferredTimeoutError)):
        return GatewayError("timeout", "the upstream did not answer in time")
    if isinstance(e, (ConnectError, DNSLookupError)):
        return GatewayError("bad_gateway", "could not connect to the upstream")
    return GatewayError("bad_gateway", "the upstream connection failed before a response")


async def discard(response: Any) -> None:
    try:
        await treq.content(response)
    except Exception:
        pass


async def upstream_error(response: Any) -> GatewayError:
    """
    An upstream's error response, as a L{GatewayError} carrying its status and its own message.
    """
    try:
        raw = await treq.content(response)
    except Exception:
        raw = b""
    message = error_message(raw) or f"the upstream answered HTTP {response.code}"
    # Hostile values (inf, nan, 1e400, dates) are ignored: they once ended a request in an HTML 500.
    retry_after = retry_after_seconds(response.headers.getRawHeaders(b"retry-after"))
    return GatewayError(kind_for_status(response.code), message, status=response.code, retry_after=retry_after)


def error_message(raw: bytes) -> str | None:
    """
    The message in an upstream's error body, whichever of the usual shapes it has.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return body.get("error_description") or error
        for key in ("message", "Message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return None



def refuses_gateway(provider: Any, deployment: Any, headers: Any, status: int) -> bool:
    """
    Whether a 403 means the upstream refused the gateway's own credentials (Bedrock's signature and key
    errors) rather than something the client should hear about: a provider says so with
    C{refuses_credentials_with} (the statuses its API uses for that); it is told, to forget them.
    """
    if status not in provider.refuses_credentials_with:
        return False
    provider.credentials_rejected(deployment, headers)
    return True
