"""
A simulated SAP AI Core: XSUAA tokens plus the Azure OpenAI, Bedrock (invoke, invoke-with-response-stream,
converse, converse-stream) and Vertex (generateContent, streamGenerateContent) dialects its deployments speak,
with deterministic replies, per-request directives and fault injection.

The proxy's tests, the benchmarks and the README's first command run against it, so it copies the real
services' wire formats (including their quirks) rather than an idealised version of them.

Directives: C{#sim{...json...}} anywhere in the last user turn's text (removed from the echo). Keys:
C{events} (content deltas, default 8), C{event_bytes} (pad each delta), C{delay} (seconds between events),
C{fault} and C{fault_after} (event index), C{retry_after}, C{tool_calls} (number of calls), C{thinking},
C{stop} ("max_tokens" | "stop_sequence"), C{python_literals} (converse-stream), C{no_usage}.

Faults (directive C{fault}, C{Simulator.faults.set(deployment_id, fault, count=1, retry_after=1)}, or
C{POST /_sim/faults {"deployment", "fault", "count", "retry_after"}}; deployment C{"*"} also hits the token
endpoint): C{429}, C{500}, C{503}, C{401}, C{token_down}, C{reset_before_headers}, C{reset_mid_stream},
C{stall_mid_stream}, C{slow_headers}, C{error_mid_stream}.

The Klein app (and with it the reactor) is imported lazily, so C{sapproxy.simulator.tap} and the config
classes can be imported by twistd's plugin scan without installing a reactor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DeploymentSpec, SimulatorConfig, config_from_json, default_simulator_config, load_config
from .directives import Directive, extract_directive
from .faults import FAULTS, FaultController

if TYPE_CHECKING:
    from .app import Simulator, SimulatorStats, make_simulator

__all__ = [
    "FAULTS", "DeploymentSpec", "Directive", "FaultController", "Simulator", "SimulatorConfig",
    "SimulatorStats", "config_from_json", "default_simulator_config", "extract_directive", "load_config",
    "make_simulator",
]

_LAZY = frozenset({"Simulator", "SimulatorStats", "make_simulator"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
