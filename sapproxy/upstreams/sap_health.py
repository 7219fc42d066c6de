"""
How SAP AI Core says the fault is the gateway's, not the client's: a 404 "Deployment d-gone not found" from a
deployment that was recreated, stopped or deleted (L{is_stale_deployment}), and a refused or unreachable token
endpoint (L{credential_error}: a 502 naming the subaccount, or a 503).
"""

from __future__ import annotations

import re

from sapproxy.dispatch.upstream_faults import upstream_auth_failed
from sapproxy.errors import GatewayError

_NOT_FOUND = re.compile(r"deployment\s+(\S+)\s+not\s+found", re.IGNORECASE)


def is_stale_deployment(message: str, deployment_id: str) -> bool:
    """
    Whether a 404's message says the deployment itself does not exist (SAP AI Core's
    C{Deployment <id> not found ...}), as opposed to a path or model the client named.
    """
    found = _NOT_FOUND.search(message or "")
    return found is not None and found.group(1).strip("'\".,") in (deployment_id, "")


def credential_error(subaccount: str, error: Exception) -> GatewayError:
    """
    A failed token: refused credentials are a 502 naming the subaccount; an unreachable token endpoint a 503.
    """
    if getattr(error, "rejected", False):
        return upstream_auth_failed(subaccount, str(error))
    return GatewayError("overloaded", f"could not get an SAP AI Core token for subaccount {subaccount}: {error}")
