"""The twistd plugin's options, config file and service."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.application.internet import TCPServer

from sapproxy.simulator import DeploymentSpec, config_from_json, default_simulator_config
from sapproxy.simulator.tap import Options, build_config, makeService


def test_sim_tap_options_defaults_and_service() -> None:
    options = Options()
    options.parseOptions([])
    assert options["port"] == 3099 and options["host"] == "127.0.0.1"
    assert build_config(options) == default_simulator_config()
    service = makeService(options)
    assert isinstance(service, TCPServer)
    assert service.name == "sapproxy-simulator"


def test_sim_tap_config_file_and_event_delay(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"clientid": "c", "clientsecret": "s", "resource_group": "rg",
                                "deployments": {"x": {"kind": "bedrock", "model": "anthropic--claude-4.5-haiku",
                                                      "bedrock_stream_framing": "sse"}}}))
    options = Options()
    options.parseOptions(["--config", str(path), "--event-delay", "0.25", "--port", "0"])
    config = build_config(options)
    assert (config.clientid, config.clientsecret, config.resource_group) == ("c", "s", "rg")
    assert config.event_delay == 0.25
    assert config.deployments == {"x": DeploymentSpec("bedrock", "anthropic--claude-4.5-haiku", "sse")}


def test_sim_default_config_deployments() -> None:
    config = default_simulator_config()
    assert config.clientid == "sim-client" and config.clientsecret == "sim-secret"
    assert {k: (v.kind, v.model) for k, v in config.deployments.items()} == {
        "d-gpt41": ("openai", "gpt-4.1"), "d-gpt5": ("openai", "gpt-5"), "d-o3": ("openai", "o3"),
        "d-embed": ("openai", "text-embedding-3-small"),
        "d-sonnet": ("bedrock", "anthropic--claude-4.5-sonnet"), "d-opus": ("bedrock", "anthropic--claude-4.1-opus"),
        "d-haiku": ("bedrock", "anthropic--claude-4.5-haiku"), "d-gemini": ("vertex", "gemini-2.5-pro"),
        "d-gemini-flash": ("vertex", "gemini-2.5-flash")}
    assert config.deployments["d-haiku"].bedrock_stream_framing == "sse"
    assert config.deployments["d-sonnet"].bedrock_stream_framing == "eventstream"
    assert config_from_json({"event_delay": 1}).event_delay == 1.0


def test_sim_tap_import_does_not_install_reactor() -> None:
    import subprocess
    import sys

    code = ("import sys, sapproxy.simulator.tap, sapproxy.simulator; "
            "sys.exit(1 if 'twisted.internet.reactor' in sys.modules else 0)")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
