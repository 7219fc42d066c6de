"""
A simulated SAP AI Core: XSUAA tokens plus the Azure OpenAI, Bedrock (invoke, invoke-with-response-stream,
converse, converse-stream) and Vertex (generateContent, streamGenerateContent) dialects its deployments speak,
with deterministic replies, per-request C{#sim{...}} directives and fault injection.

The proxy's tests, the benchmarks and the README's first command run against it, so it copies the real
services' wire formats (including their quirks) rather than an idealised version of them.
"""

from .app import Simulator, SimulatorStats, make_simulator
from .config import DeploymentSpec, SimulatorConfig, config_from_json, default_simulator_config, load_config
from .directives import Directive, extract_directive
from .faults import FAULTS, FaultController

__all__ = [
    "FAULTS", "DeploymentSpec", "Directive", "FaultController", "Simulator", "SimulatorConfig",
    "SimulatorStats", "config_from_json", "default_simulator_config", "extract_directive", "load_config",
    "make_simulator",
]
