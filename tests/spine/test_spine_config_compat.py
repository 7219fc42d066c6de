"""
The original Flask proxy's and the FastAPI fork's configs load unchanged; discovery, deployment ids, model
filters and X.509 keys are checked with one clear line per mistake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sapproxy.config import ConfigError, load_config

KEY = {"clientid": "c", "clientsecret": "s", "url": "https://auth.example",
       "serviceurls": {"AI_API_URL": "https://api.example/"}}
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PRIVATE = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
X509 = {"clientid": "c", "credential-type": "x509", "certificate": CERT, "key": PRIVATE,
        "url": "https://auth.example", "certurl": "https://auth.cert.example",
        "serviceurls": {"AI_API_URL": "https://api.example"}}
URL = "https://api.example/v2/inference/deployments/d1"


def load(tmp_path: Path, config: Any) -> Any:
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return load_config(path)


def error(tmp_path: Path, config: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    return str(caught.value)


def test_the_flask_proxys_example_with_hostlocal(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "subAccounts": {"subAccount1": {"resource_group": "default", "service_key_json": "key.json",
                                        "deployment_models": {"gpt-4o": [URL], "3.7-sonnet": [URL]}}},
        "secret_authentication_tokens": ["t"], "port": 3001, "host": "0.0.0.0", "hostLocal": "127.0.0.1"})
    assert config.ignored_keys == ("hostLocal",)
    assert config.host == "0.0.0.0" and not config.subaccounts["subAccount1"].discover


def test_the_fastapi_forks_example(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "model_filters": {"include_filters": ["^gpt-.*", "^claude-.*", ".*-sonnet$"],
                          "exclude_filters": [".*-test$", "^experimental-.*"]},
        "subAccounts": {"subAccount1": {"resource_group": "default", "service_key_json": "key.json",
                                        "deployment_ids": {"gpt-4o": ["d123456789"]},
                                        "deployment_models": {"3.7-sonnet": [URL]}}},
        "secret_authentication_tokens": ["t"], "port": 3001, "host": "0.0.0.0"})
    account = config.subaccounts["subAccount1"]
    assert account.deployment_models["gpt-4o"] == ("https://api.example/v2/inference/deployments/d123456789",)
    assert config.model_filters.allows("gpt-4o") and config.model_filters.allows("3.7-sonnet")
    assert not config.model_filters.allows("gpt-4o-test") and not config.model_filters.allows("gemini-2.5-pro")
    assert config.ignored_keys == ()


def test_the_forks_first_filter_names_and_single_account_deployment_ids(tmp_path: Path) -> None:
    config = load(tmp_path, {"model_filters": {"include": ["gpt"], "exclude": ["mini"]},
                             "service_key_json": "key.json", "deployment_ids": {"gpt-4.1": "d9"}})
    assert config.model_filters.allows("gpt-4.1") and not config.model_filters.allows("gpt-4.1-mini")
    assert config.subaccounts["default"].deployment_models["gpt-4.1"][0].endswith("/deployments/d9")
    assert config.subaccounts["default"].discover


def test_discovery_settings_and_mistakes(tmp_path: Path) -> None:
    config = load(tmp_path, {"subAccounts": {"a": {"service_key_json": "key.json"}},
                             "discovery": {"refresh_seconds": 60}, "strict_model_names": True,
                             "session_affinity": {"header": "X-Session"}, "aliases": {"fast": "discovered-later"}})
    assert config.subaccounts["a"].discover and config.discovery.refresh_seconds == 60
    assert config.strict_model_names and config.session_affinity.header == "X-Session"
    no_api = {"clientid": "c", "clientsecret": "s", "url": "https://auth.example"}
    assert error(tmp_path, {"subAccounts": {"a": {"service_key_json": no_api}}}) == (
        f"{tmp_path / 'config.json'}: subAccounts.a.deployment_models: missing, and the service key has no "
        "serviceurls.AI_API_URL to discover deployments from")
    assert "subAccounts.a.deployment_ids.m: deployment ids need serviceurls.AI_API_URL" in error(
        tmp_path, {"subAccounts": {"a": {"service_key_json": no_api, "deployment_models": {"x": [URL]},
                                         "deployment_ids": {"m": ["d1"]}}}})
    assert "subAccounts.a.deployment_ids.m: expected a non-empty list of deployment ids" in error(
        tmp_path, {"subAccounts": {"a": {"service_key_json": "key.json", "deployment_ids": {"m": ["../x"]}}}})
    assert "model_filters.include_filters[0]: not a regular expression" in error(
        tmp_path, {"service_key_json": "key.json", "model_filters": {"include_filters": ["("]}})
    assert "model_filters.only: unknown key" in error(
        tmp_path, {"service_key_json": "key.json", "model_filters": {"only": []}})
    assert "discovery.refresh: unknown key" in error(tmp_path, {"service_key_json": "key.json",
                                                                "discovery": {"refresh": 1}})
    assert "hostlocal: unknown key" in error(tmp_path, {"service_key_json": "key.json", "hostlocal": "x"})


def test_x509_service_keys(tmp_path: Path) -> None:
    config = load(tmp_path, {"service_key_json": X509})
    key = config.subaccounts["default"].service_key
    assert key.x509 and key.certificate == CERT and key.private_key == PRIVATE
    assert key.token_url == "https://auth.cert.example/oauth/token?grant_type=client_credentials"
    assert "BEGIN" not in repr(key)
    missing = {k: v for k, v in X509.items() if k != "certurl"}
    assert "service_key_json.certurl: missing (an X.509 service key needs certificate, key and certurl)" in error(
        tmp_path, {"service_key_json": missing})
    assert "service_key_json.key: expected a PEM block" in error(
        tmp_path, {"service_key_json": {**X509, "key": "not pem"}})
