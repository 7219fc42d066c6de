"""
Who may read the operator pages' details.

C{/health} and C{/metrics} used to be open to anyone who could reach the port, and showed subaccounts,
resource groups, deployment ids, the model names clients sent and key names.  Now the public C{/health}
answers its status only; the details and C{/metrics} are for operators:

  - when C{ops_token}, C{metrics_token} or C{admin_token} is set, to a caller presenting one of them as
    C{Authorization: Bearer};
  - when neither is set, to callers on the loopback interface only (the operator's own machine; behind a
    reverse proxy on the same host, set a token instead).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from sapproxy.auth import presented_token


def operator_tokens(config: Any) -> list[str]:
    return [t for t in (getattr(config, "ops_token", None), config.metrics_token, getattr(config, "admin_token", None))
            if t]


def is_operator(request: Any, config: Any) -> bool:
    """
    Whether C{request} may read operator details (see the module's docstring).
    """
    tokens = operator_tokens(config)
    if tokens:
        given = (presented_token(request.getHeader(b"authorization"), None) or "").encode()
        # Every comparison runs, so the time taken does not tell which token was close.
        matches = [hmac.compare_digest(given, token.encode()) for token in tokens]
        return any(matches)
    return _loopback(request)


def _loopback(request: Any) -> bool:
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    if not isinstance(host, str):
        return False  # a UNIX socket or an unknown transport: no address to trust
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
