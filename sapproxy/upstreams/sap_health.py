"""
What the dispatcher does when SAP AI Core says the fault is the gateway's, not the client's.

A deployment that answers 404 "Deployment d-gone not found" is stale (recreated, stopped or deleted): the
client's request was fine, so it fails over at once, that deployment's breaker opens, discovery looks again,
and the operator reads one log line naming the id.  A refused SAP credential is a 502 naming the subaccount
(L{credential_error}).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from twisted.logger import Logger

from sapproxy.errors import GatewayError
from sapproxy.upstreams.sap_credentials import auth_failed_message

if TYPE_CHECKING:
    from sapproxy.dispatch.picker import Deployment, DeploymentPicker

log = Logger()

_NOT_FOUND = re.compile(r"deployment\s+(\S+)\s+not\s+found", re.IGNORECASE)


def is_stale_deployment(message: str, deployment_id: str) -> bool:
    """
    Whether a 404's message says the deployment itself does not exist (SAP AI Core's
    C{Deployment <id> not found ...}), as opposed to a path or model the client named.
    """
    found = _NOT_FOUND.search(message or "")
    return found is not None and found.group(1).strip("'\".,") in (deployment_id, "")


def stale_error(model: str, deployment_id: str) -> GatewayError:
    return GatewayError("bad_gateway", f"the SAP AI Core deployment {deployment_id} of model {model} no longer "
                        "exists; the gateway is looking for its deployments again, retry shortly")


class UpstreamRefused(Exception):
    """
    The upstream refused the gateway's credentials themselves (not merely an expired token).
    """

    rejected = True


def credential_error(subaccount: str, error: Exception) -> GatewayError:
    """
    A failed token: refused credentials are a 502 naming the subaccount; an unreachable token endpoint a 503.
    """
    if getattr(error, "rejected", False):
        return GatewayError("bad_gateway", auth_failed_message(subaccount, str(error)), code="upstream_auth_failed")
    return GatewayError("overloaded", f"could not get an SAP AI Core token for subaccount {subaccount}: {error}")


def overall_status(failing: Sequence[bool]) -> tuple[str, int]:
    """
    C{/health}'s verdict from each subaccount's credential state: 503 when none can serve (a load balancer
    should stop sending traffic), "degraded" when some cannot.
    """
    if failing and all(failing):
        return "failing", 503
    return ("degraded" if any(failing) else "ok"), 200


def credentials_failing(health: dict[str, Any]) -> bool:
    """
    Whether a provider's C{/health} state says it cannot get credentials now.
    """
    return health.get("credentials") in ("rejected", "failing")


def without_provider(deployments: Sequence[Deployment], provider: str) -> list[Deployment]:
    return [d for d in deployments if d.provider != provider]


class StaleDeployments:
    """
    Deployments found gone: each opens its breaker, asks its provider to look again (C{deployment_gone},
    when it has one), and is logged once per deployment.
    """

    def __init__(self, picker: DeploymentPicker, metrics: Any = None) -> None:
        self.picker = picker
        self.metrics = metrics
        self.logged: set[str] = set()

    def gone(self, deployment: Deployment, provider: Any, message: str) -> None:
        self.picker.trip(deployment)
        if deployment.url not in self.logged:
            self.logged.add(deployment.url)
            log.warn("deployment {id} of model {model} (subaccount {subaccount}) is gone: {message}; failing over "
                     "and looking for deployments again", id=deployment.id, model=deployment.model,
                     subaccount=deployment.provider, message=message)
        if self.metrics is not None:
            self.metrics.stale_deployment(deployment.provider)
        rediscover = getattr(provider, "deployment_gone", None)
        if rediscover is not None:
            rediscover(deployment)
