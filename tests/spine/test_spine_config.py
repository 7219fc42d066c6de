"""
Configuration: the original proxy's format (multi- and single-account), and one clear line per mistake.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sapproxy.config import DEFAULT_API_VERSION, REASONING_API_VERSION, ConfigError, load_config

KEY = {"clientid": "c", "clientsecret": "s", "url": "https://auth.example", "identityzoneid": "zone",
       "serviceurls": {"AI_API_URL": "https://api.example"}, "appname": "extra keys are ignored"}
URL = "https://api.example/v2/inference/deployments/d1"


def write(tmp_path: Path, config: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def accounts(**account: Any) -> dict[str, Any]:
    body = {"service_key_json": "keys/acct1.json", "deployment_models": {"gpt-4.1": [URL]}, **account}
    return {"subAccounts": {"acct1": body}}


def error(tmp_path: Path, config: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, config))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_original_format_with_a_key_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "acct1.json").write_text(json.dumps(KEY))
    config = load_config(write(tmp_path, {**accounts(resource_group="rg1"), "secret_authentication_tokens": ["t"],
                                          "host": "0.0.0.0", "port": 4000}))
    account = config.subaccounts["acct1"]
    assert (account.resource_group, account.service_key.identityzoneid) == ("rg1", "zone")
    assert account.service_key.ai_api_url == "https://api.example"
    assert account.deployment_models == {"gpt-4.1": (URL,)}
    assert (config.host, config.port, config.secret_authentication_tokens) == ("0.0.0.0", 4000, ("t",))
    assert config.usage_store == f"sqlite:///{tmp_path}/usage.db"


def test_legacy_single_account_form_and_inline_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"service_key_json": KEY, "deployment_models": {"m": URL},
                                          "resource_group": "rg"}))
    assert list(config.subaccounts) == ["default"]
    assert config.subaccounts["default"].resource_group == "rg"


def test_command_line_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"service_key_json": KEY, "deployment_models": {"m": URL}}),
                         host="::1", port=5000)
    assert (config.host, config.port) == ("::1", 5000)


def test_api_versions() -> None:
    from sapproxy.config import GatewayConfig, ModelSettings

    config = GatewayConfig(models={"gpt-4.1": ModelSettings(api_version="2025-01-01")})
    assert config.api_version("gpt-4.1") == "2025-01-01"
    assert config.api_version("gpt-4o") == DEFAULT_API_VERSION
    for reasoning in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"):
        assert config.api_version(reasoning) == REASONING_API_VERSION


@pytest.mark.parametrize(("config", "expected"), [
    (accounts(), "subAccounts.acct1.service_key_json: file not found: keys/acct1.json"),
    (accounts(service_key_json={"clientsecret": "s", "url": "https://u"}),
     "subAccounts.acct1.service_key_json.clientid: missing"),
    (accounts(service_key_json={**KEY, "url": "auth.example"}),
     "subAccounts.acct1.service_key_json.url: not an http(s) URL: auth.example"),
    (accounts(service_key_json=KEY, deployment_models={"gpt-4.1": ["ftp://x/d"]}),
     "subAccounts.acct1.deployment_models.gpt-4.1[0]: not an http(s) URL: ftp://x/d"),
    (accounts(service_key_json=KEY, deployment_models={"gpt-4.1": []}),
     "subAccounts.acct1.deployment_models.gpt-4.1: expected a non-empty list of deployment URLs"),
    ({**accounts(service_key_json=KEY), "prot": 3001}, "prot: unknown key (check its spelling)"),
    ({**accounts(service_key_json=KEY), "timeouts": {"idel": 3}}, "timeouts.idel: unknown key (check its spelling)"),
    ({**accounts(service_key_json=KEY), "port": "3001"}, "port: expected int"),
    ({**accounts(service_key_json=KEY), "aliases": {"x": "nothing"}}, "aliases.x: names nothing, which no subaccount or provider serves"),
    (accounts(service_key_json=KEY, resource_grp="x"), "subAccounts.acct1.resource_grp: unknown key (check its spelling)"),
    ({}, "subAccounts: missing (no subaccount is configured)"),
    ("{\"subAccounts\": ", "invalid JSON at line 1"),
])
def test_each_mistake_is_one_line_naming_file_and_key(tmp_path: Path, config: Any, expected: str) -> None:
    message = error(tmp_path, config)
    assert message.startswith(str(tmp_path / "config.json") + ": ")
    assert expected in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.json: file not found"):
        load_config(tmp_path / "nope.json")


def test_secrets_do_not_appear_in_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"service_key_json": KEY, "deployment_models": {"m": URL}}))
    assert "'s'" not in repr(config.subaccounts["default"].service_key)
    digest = hashlib.sha256(b"x").hexdigest()
    assert load_config(write(tmp_path, {"service_key_json": KEY, "deployment_models": {"m": URL},
                                        "secret_authentication_tokens": [f"sha256:{digest}"]}))
