"""
The providers section of the config: each kind, secrets from the environment, models as a list or a map,
routing, and one line naming the key path for each mistake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sapproxy.config import ConfigError, load_config
from sapproxy.config.providers import (
    AnthropicProvider, AzureOpenAIProvider, BedrockProvider, GeminiProvider, OpenAIProvider, ProviderModel, Secret,
)

KEY = {"clientid": "c", "clientsecret": "s", "url": "https://auth.example"}
SAP = {"subAccounts": {"acct1": {"service_key_json": KEY,
                                 "deployment_models": {"gpt-4.1": ["https://api.example/v2/inference/deployments/d1"]}}}}


def load(tmp_path: Path, config: dict[str, Any]) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return load_config(path)


def error(tmp_path: Path, config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    message = str(caught.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_every_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_KEY", "sk-ant-secret")
    config = load(tmp_path, {**SAP, "providers": {
        "ollama": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1", "models": ["llama3.2"]},
        "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": "sk-x",
                   "headers": {"OpenAI-Organization": "org-1"}, "models": {"gpt-4.1": "gpt-4.1-2025-04-14"}},
        "azure": {"kind": "azure-openai", "endpoint": "https://r.openai.azure.com", "api_key": "k",
                  "api_version": "2024-10-21", "deployments": {"gpt-4o": "my-gpt4o"}},
        "claude": {"kind": "anthropic", "api_key": "env:ANTHROPIC_KEY", "betas": ["context-1m-2025-08-07"],
                   "models": {"sonnet": {"upstream_model": "claude-sonnet-4-5", "family": "claude"}}},
        "aws": {"kind": "bedrock", "region": "eu-central-1", "profile": "dev",
                "role_arn": "arn:aws:iam::123456789012:role/llm",
                "models": {"claude-aws": {"upstream_model": "anthropic.claude-v2", "family": "claude"}}},
        "google": {"kind": "gemini", "api_key": "g", "models": ["gemini-2.5-flash"]},
    }})
    p = config.providers
    assert isinstance(p["ollama"], OpenAIProvider) and p["ollama"].models == {"llama3.2": ProviderModel("llama3.2")}
    assert p["ollama"].api_key is None and p["ollama"].name == "ollama"
    assert p["openai"].models["gpt-4.1"].upstream_model == "gpt-4.1-2025-04-14"
    assert p["openai"].headers == {"OpenAI-Organization": "org-1"}
    assert isinstance(p["azure"], AzureOpenAIProvider) and p["azure"].deployments == {"gpt-4o": "my-gpt4o"}
    assert isinstance(p["claude"], AnthropicProvider)
    assert p["claude"].api_key == Secret("sk-ant-secret", "env:ANTHROPIC_KEY")
    assert p["claude"].betas == ("context-1m-2025-08-07",) and p["claude"].base_url == "https://api.anthropic.com"
    assert isinstance(p["aws"], BedrockProvider) and p["aws"].url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert p["aws"].models["claude-aws"] == ProviderModel("anthropic.claude-v2", family="claude")
    assert isinstance(p["google"], GeminiProvider)
    # Secrets never print.
    assert "sk-ant-secret" not in repr(config) and "sk-x" not in repr(config)
    assert config.served_by["gpt-4.1"] == ["acct1", "openai"]
    assert config.route("gpt-4.1") == ["acct1", "openai"]
    assert set(config.served_by) >= {"llama3.2", "gpt-4o", "sonnet", "claude-aws", "gemini-2.5-flash"}


def test_routing_sets_the_failover_order(tmp_path: Path) -> None:
    config = load(tmp_path, {**SAP, "routing": {"gpt-4.1": ["oa", "acct1"]}, "providers": {
        "oa": {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "models": ["gpt-4.1"]}}})
    assert config.route("gpt-4.1") == ["oa", "acct1"]


def test_providers_alone_need_no_subaccount(tmp_path: Path) -> None:
    config = load(tmp_path, {"providers": {"oa": {"kind": "openai", "base_url": "http://h/v1", "models": ["m"]}}})
    assert config.subaccounts == {} and config.route("m") == ["oa"]


OA = {"kind": "openai", "base_url": "http://h/v1", "models": ["m"]}


@pytest.mark.parametrize("providers, extra, expected", [
    ({"x": {"kind": "nope"}}, {}, 'providers.x.kind: expected one of openai, azure-openai, anthropic, bedrock, gemini, got "nope"'),
    ({"x": {**OA, "bsae_url": "h"}}, {}, "providers.x.bsae_url: unknown key (check its spelling)"),
    ({"x": {**OA, "base_url": "ftp://h"}}, {}, "providers.x.base_url: not an http(s) URL: ftp://h"),
    ({"x": {**OA, "models": {"m": {"upstream_modle": "y"}}}}, {}, "providers.x.models.m.upstream_modle: unknown key"),
    ({"x": {**OA, "models": {"m": 3}}}, {}, "providers.x.models.m: expected the upstream model id or an object"),
    ({"x": {**OA, "models": []}}, {}, "providers.x.models: expected at least one model"),
    ({"x": {**OA, "api_key": "env:SAPPROXY_TEST_UNSET"}}, {}, "providers.x.api_key: environment variable SAPPROXY_TEST_UNSET is not set"),
    ({"x": {"kind": "anthropic", "models": ["c"]}}, {}, "providers.x.api_key: "),
    ({"x": {"kind": "bedrock", "region": "frankfurt", "models": ["c"]}}, {}, "providers.x.region: not an AWS region: frankfurt"),
    ({"x": {"kind": "gemini", "models": ["g"]}}, {}, "providers.x.api_key: "),
    ({"x": {"kind": "azure-openai", "endpoint": "https://r", "api_key": "k", "deployments": {"a": "d"},
            "models": ["b"]}}, {}, "providers.x.models.b: has no entry in deployments"),
    ({"acct1": OA}, {}, "providers.acct1: a subaccount has the same name"),
    ({"x": OA}, {"routing": {"m": ["acct1"]}}, "routing.m[0]: acct1 does not serve m"),
    ({"x": OA}, {"routing": {"m": ["y"]}}, "routing.m[0]: y is neither a subaccount nor a provider"),
    ({"x": OA}, {"routing": {"zz": ["x"]}}, "routing.zz: no subaccount or provider serves this model"),
])
def test_each_mistake_is_one_line_naming_the_key(tmp_path: Path, providers: Any, extra: Any, expected: str) -> None:
    assert expected in error(tmp_path, {**SAP, "providers": providers, **extra})


def test_a_secret_never_appears_in_a_config_error(tmp_path: Path) -> None:
    message = error(tmp_path, {**SAP, "providers": {"x": {**OA, "api_key": "sk-very-secret", "bad": 1}}})
    assert "sk-very-secret" not in message


def test_vertex_needs_a_service_account_key_file(tmp_path: Path) -> None:
    vertex = {"project": "p", "location": "europe-west4", "service_account_file": "sa.json"}
    gemini = {"kind": "gemini", "models": ["gemini-2.5-pro"], "vertex": vertex}
    assert "providers.x.vertex.service_account_file: file not found: sa.json" in error(
        tmp_path, {**SAP, "providers": {"x": gemini}})
    (tmp_path / "sa.json").write_text(json.dumps({"type": "authorized_user"}))
    assert "not a service account key file" in error(tmp_path, {**SAP, "providers": {"x": gemini}})
    (tmp_path / "sa.json").write_text(json.dumps({"type": "service_account"}))
    config = load(tmp_path, {**SAP, "providers": {"x": gemini}})
    assert config.providers["x"].vertex.url == ("https://europe-west4-aiplatform.googleapis.com/v1/projects/p/"
                                                "locations/europe-west4/publishers/google")
    assert "not both" in error(tmp_path, {**SAP, "providers": {"x": {**gemini, "api_key": "k"}}})


def test_a_provider_models_family_reaches_the_catalog(tmp_path: Path) -> None:
    from sapproxy.models import ModelCatalog

    config = load(tmp_path, {**SAP, "providers": {"x": {**OA, "models": {
        "big-one": {"upstream_model": "anthropic/claude-sonnet-4.5", "family": "claude"}, "plain": "p"}}}})
    catalog = ModelCatalog(config.served_by, config.catalog_settings(), config.aliases)
    assert catalog.family("big-one") == "claude" and catalog.family("plain") == "openai"


def test_a_bedrock_model_may_go_through_converse(tmp_path: Path) -> None:
    config = load(tmp_path, {**SAP, "providers": {"aws": {"kind": "bedrock", "region": "us-east-1", "models": {
        "claude-conv": {"upstream_model": "anthropic.claude-sonnet-4-5-20250929-v1:0", "converse": True},
        "nova-pro": "amazon.nova-pro-v1:0"}}}})
    models = config.providers["aws"].models
    assert models["claude-conv"].converse and not models["nova-pro"].converse
