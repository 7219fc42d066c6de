"""
The simulated AI API (C{/v2/lm/deployments}, C{/v2/admin/resourceGroups}): the tenant's deployments as SAP AI
Core lists them, with a lifecycle tests drive (C{POST /_sim/deployments}): deployments appear, stop and vanish.

The shapes follow the AI API: C{{"count": n, "resources": [...]}}, each deployment with C{id},
C{deploymentUrl}, C{status}, C{targetStatus}, C{scenarioId}, C{configurationName} and the model under
C{details.resources.backend_details.model} (and its camel-case twin C{backendDetails}).
"""

from __future__ import annotations

from typing import Any, Mapping

from attrs import define, field

from .config import DeploymentSpec

SCENARIO = "foundation-models"
#: The executable (the serving backend) SAP AI Core names for each provider family.
EXECUTABLES = {"openai": "azure-openai", "bedrock": "aws-bedrock", "vertex": "gcp-vertexai"}
STATUSES = ("RUNNING", "STOPPED", "PENDING", "DEAD", "UNKNOWN")
CREATED = "2026-01-05T09:30:00Z"


@define
class DeploymentTable:
    """
    The live deployments: every configured one RUNNING at first; tests add, stop and delete them.
    """

    specs: dict[str, DeploymentSpec]
    status: dict[str, str] = field(factory=dict)

    @classmethod
    def of(cls, specs: Mapping[str, DeploymentSpec]) -> DeploymentTable:
        return cls(dict(specs), {d: "RUNNING" for d in specs})

    def serving(self, deployment_id: str) -> DeploymentSpec | None:
        """
        The spec of a deployment that answers inference calls (a RUNNING one), else C{None}.
        """
        if self.status.get(deployment_id) != "RUNNING":
            return None
        return self.specs.get(deployment_id)

    def put(self, deployment_id: str, spec: DeploymentSpec, status: str = "RUNNING") -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
        self.specs[deployment_id] = spec
        self.status[deployment_id] = status

    def remove(self, deployment_id: str) -> bool:
        self.status.pop(deployment_id, None)
        return self.specs.pop(deployment_id, None) is not None

    def resource(self, deployment_id: str, base_url: str) -> dict[str, Any]:
        spec = self.specs[deployment_id]
        status = self.status[deployment_id]
        model = {"name": spec.model, "version": "latest"}
        return {
            "id": deployment_id,
            "deploymentUrl": f"{base_url}/v2/inference/deployments/{deployment_id}" if status == "RUNNING" else "",
            "configurationId": f"cfg-{deployment_id}",
            "configurationName": f"{spec.model}-config",
            "executableId": EXECUTABLES[spec.kind],
            "scenarioId": SCENARIO,
            "status": status,
            "targetStatus": "STOPPED" if status == "STOPPED" else "RUNNING",
            "lastOperation": "CREATE",
            "latestRunningConfigurationId": f"cfg-{deployment_id}",
            "createdAt": CREATED,
            "modifiedAt": CREATED,
            "submissionTime": CREATED,
            "startTime": CREATED,
            "details": {
                "resources": {"backendDetails": {"model": model}, "backend_details": {"model": model}},
                "scaling": {"backendDetails": {}, "backend_details": {}},
            },
        }

    def listing(self, base_url: str, query: Mapping[str, str]) -> dict[str, Any]:
        """
        C{GET /v2/lm/deployments}, with the AI API's C{scenarioId}, C{status} and C{executableIds} filters.
        """
        rows = [self.resource(d, base_url) for d in sorted(self.specs)]
        if query.get("scenarioId"):
            rows = [r for r in rows if r["scenarioId"] == query["scenarioId"]]
        if query.get("status"):
            rows = [r for r in rows if r["status"] == query["status"]]
        if query.get("executableIds"):
            wanted = set(query["executableIds"].split(","))
            rows = [r for r in rows if r["executableId"] in wanted]
        return {"count": len(rows), "resources": rows}


def resource_groups(groups: list[str], tenant: str) -> dict[str, Any]:
    """
    C{GET /v2/admin/resourceGroups}.
    """
    return {"count": len(groups), "resources": [
        {"resourceGroupId": g, "tenantId": tenant, "zoneId": tenant, "createdAt": CREATED, "labels": [],
         "status": "PROVISIONED", "statusMessage": ""} for g in groups]}
