"""
Faults that are the gateway's, not the client's, whichever provider an attempt went to.

A deployment its provider says is gone (SAP AI Core: 404 "Deployment d-gone not found"): the client's request was
fine, so it fails over at once, the deployment's breaker opens, the provider looks for its deployments again, and
the operator reads one log line naming it.  Credentials the upstream refuses are the gateway's own (a client's key
is never sent upstream): a 502 naming the provider, never a 401.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.logger import Logger

from sapproxy.dispatch.picker import Deployment, DeploymentPicker
from sapproxy.errors import GatewayError
from sapproxy.interfaces import IProvider

log = Logger()

#: The C{code} of the error a refused upstream credential gives the client.
UPSTREAM_AUTH_FAILED = "upstream_auth_failed"


def upstream_auth_failed(provider: str, detail: str) -> GatewayError:
    """
    What the client reads: the subaccount, that it is the gateway's own credentials, and why.
    """
    return GatewayError("bad_gateway", f"upstream authentication failed for subaccount {provider}: {detail}; the "
                        "gateway's upstream credentials were refused (this is not about your API key; tell the "
                        "gateway's operator)", code=UPSTREAM_AUTH_FAILED)


def stale_error(model: str, deployment_id: str) -> GatewayError:
    return GatewayError("bad_gateway", f"the deployment {deployment_id} of model {model} no longer exists; the "
                        "gateway is looking for its deployments again, retry shortly")


def without_provider(deployments: Sequence[Deployment], provider: str) -> list[Deployment]:
    return [d for d in deployments if d.provider != provider]


class StaleDeployments:
    """
    Deployments found gone: each opens its breaker and is logged once.
    """

    def __init__(self, picker: DeploymentPicker, metrics: Any = None) -> None:
        self.picker = picker
        self.metrics = metrics
        self.logged: set[str] = set()

    def gone(self, deployment: Deployment, provider: IProvider, message: str) -> bool:
        """
        Whether a 404 with C{message} means C{deployment} itself is gone, by its provider's judgement
        (C{deployment_gone(deployment, message)}, which also starts looking again); if so, its breaker opens.
        """
        if not provider.deployment_gone(deployment, message):
            return False
        self.picker.trip(deployment)
        if deployment.url not in self.logged:
            self.logged.add(deployment.url)
            log.warn("deployment {id} of model {model} (subaccount {subaccount}) is gone: {message}; failing over "
                     "and looking for deployments again", id=deployment.id, model=deployment.model,
                     subaccount=deployment.provider, message=message)
        if self.metrics is not None:
            self.metrics.stale_deployment(deployment.provider)
        return True


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
