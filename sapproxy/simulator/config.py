"""
The simulator's configuration: which credentials it accepts and which deployments it serves.

Kept apart from the protocol code so the proxy (and C{tap}) can build a config without importing Klein.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from attrs import field, frozen

Kind = Literal["openai", "bedrock", "vertex"]
Framing = Literal["eventstream", "sse"]


def _freeze_deployments(value: Mapping[str, "DeploymentSpec"]) -> Mapping[str, "DeploymentSpec"]:
    # A frozen config must not share a mutable dict with its caller.
    return dict(value)


@frozen
class DeploymentSpec:
    """
    One SAP AI Core deployment: the provider family whose wire protocol it speaks and the model behind it.
    """

    kind: Kind
    model: str
    bedrock_stream_framing: Framing = "eventstream"
    #: C{converse-stream}: SSE lines as SAP AI Core relays them, or event-stream frames as Bedrock's own
    #: runtime sends them (the vendor Bedrock API).
    converse_stream_framing: Framing = "sse"


@frozen
class SimulatorConfig:
    """
    What the simulated AI Core accepts (XSUAA client, resource group) and serves (deployments by id).
    """

    clientid: str
    clientsecret: str
    resource_group: str = "default"
    token_expires_in: int = 3600
    event_delay: float = 0.0
    deployments: Mapping[str, DeploymentSpec] = field(factory=dict, converter=_freeze_deployments)
    identityzoneid: str | None = None


def default_simulator_config() -> SimulatorConfig:
    """
    The deployments the README, the benchmarks and the proxy's tests rely on; d-haiku uses SSE framing so
    that both Bedrock stream framings are exercised by default.
    """
    return SimulatorConfig(
        clientid="sim-client",
        clientsecret="sim-secret",
        deployments={
            "d-gpt41": DeploymentSpec("openai", "gpt-4.1"),
            "d-gpt5": DeploymentSpec("openai", "gpt-5"),
            "d-o3": DeploymentSpec("openai", "o3"),
            "d-embed": DeploymentSpec("openai", "text-embedding-3-small"),
            "d-sonnet": DeploymentSpec("bedrock", "anthropic--claude-4.5-sonnet"),
            "d-opus": DeploymentSpec("bedrock", "anthropic--claude-4.1-opus"),
            "d-haiku": DeploymentSpec("bedrock", "anthropic--claude-4.5-haiku", bedrock_stream_framing="sse"),
            "d-gemini": DeploymentSpec("vertex", "gemini-2.5-pro"),
            "d-gemini-flash": DeploymentSpec("vertex", "gemini-2.5-flash"),
        },
    )


def config_from_json(data: Mapping[str, Any], base: SimulatorConfig | None = None) -> SimulatorConfig:
    """
    Build a config from a JSON object of L{SimulatorConfig} fields; fields left out keep C{base}'s values
    (the default config when not given), and C{deployments}, when present, replaces them all.
    """
    base = base if base is not None else default_simulator_config()
    deployments: Mapping[str, DeploymentSpec] = base.deployments
    if "deployments" in data:
        deployments = {
            dep_id: DeploymentSpec(
                kind=spec["kind"], model=spec["model"],
                bedrock_stream_framing=spec.get("bedrock_stream_framing", "eventstream"),
                converse_stream_framing=spec.get("converse_stream_framing", "sse"),
            )
            for dep_id, spec in data["deployments"].items()
        }
    return SimulatorConfig(
        clientid=data.get("clientid", base.clientid),
        clientsecret=data.get("clientsecret", base.clientsecret),
        resource_group=data.get("resource_group", base.resource_group),
        token_expires_in=int(data.get("token_expires_in", base.token_expires_in)),
        event_delay=float(data.get("event_delay", base.event_delay)),
        deployments=deployments,
        identityzoneid=data.get("identityzoneid", base.identityzoneid),
    )


def load_config(path: str) -> SimulatorConfig:
    """Read L{config_from_json} input from a file."""
    with open(path, encoding="utf-8") as f:
        return config_from_json(json.load(f))
