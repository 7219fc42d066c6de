"""
What the gateway says once it is ready: per subaccount, its service key check and the models it serves (with
provider and deployments), and where client keys come from; and a loud warning only when nothing at all can
authenticate a caller.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.logger import Logger

from sapproxy.config import GatewayConfig, SubAccount
from sapproxy.models import ModelCatalog

log = Logger(namespace="sapproxy.startup")

_PROVIDER = {"openai": "Azure OpenAI", "claude": "Bedrock (Anthropic)", "gemini": "Vertex AI (Gemini)"}


def service_key_check(account: SubAccount) -> str:
    """
    What can be told of a service key without calling anyone: its token URL's origin, whether it names the
    AI API URL, and whether every deployment URL is on that API's host (a deployment on another host is
    almost always a copy-and-paste mistake).
    """
    key = account.service_key
    problems = []
    token_origin = urlsplit(key.url)
    if token_origin.scheme != "https" and token_origin.hostname not in ("127.0.0.1", "localhost", "::1"):
        problems.append("token URL is not https")
    if key.ai_api_url:
        api_host = urlsplit(key.ai_api_url).netloc
        stray = sorted({urlsplit(u).netloc for urls in account.deployment_models.values() for u in urls}
                       - {api_host})
        if stray:
            problems.append(f"deployments on {', '.join(stray)}, not on the AI API host {api_host}")
    else:
        problems.append("no serviceurls.AI_API_URL")
    verdict = "ok" if not problems else "CHECK: " + "; ".join(problems)
    return f"client {key.clientid} via {token_origin.scheme}://{token_origin.netloc} ({verdict})"


def summary_lines(config: GatewayConfig, catalog: ModelCatalog) -> list[str]:
    """
    One line per subaccount and per model it serves, then aliases.
    """
    lines = []
    for name, account in config.subaccounts.items():
        lines.append(f"subaccount {name} (resource group {account.resource_group}): service key "
                     f"{service_key_check(account)}")
        for model, urls in sorted(account.deployment_models.items()):
            family = catalog.family(model)
            deployments = ", ".join(u.rsplit("/", 1)[-1] for u in urls)
            lines.append(f"  {model}: {_PROVIDER.get(family, family)}, {len(urls)} deployment"
                         f"{'s' if len(urls) != 1 else ''} ({deployments})")
    if config.aliases:
        lines.append("aliases: " + ", ".join(f"{a} -> {t}" for a, t in sorted(config.aliases.items())))
    return lines


def client_key_sources(config: GatewayConfig, keyring: Any) -> str:
    """
    Where client keys come from: configured tokens, the key store (and how many usable keys it holds now).
    """
    store = config.usage_store.split("://", 1)[0] if config.usage_store else "none"
    parts = [f"{len(config.secret_authentication_tokens)} configured token"
             f"{'s' if len(config.secret_authentication_tokens) != 1 else ''} (secret_authentication_tokens)"]
    if keyring is not None and keyring.loaded:
        parts.append(f"{len(keyring)} usable key{'s' if len(keyring) != 1 else ''} in the {store} key store "
                     "(sapproxy-admin keys)")
    else:
        parts.append(f"the {store} key store, not readable yet (sapproxy-admin keys)")
    return "client keys: " + "; ".join(parts)


def announce(config: GatewayConfig, catalog: ModelCatalog, authenticator: Any, keyring: Any) -> None:
    """
    Log the summary, and warn when nothing can authenticate (no configured token, and a key store that was
    read and never held a key): only then is every caller let in.
    """
    for line in summary_lines(config, catalog):
        log.info(line.replace("{", "{{").replace("}", "}}"))
    log.info(client_key_sources(config, keyring).replace("{", "{{").replace("}", "}}"))
    if authenticator.disabled:
        log.warn("*** no client key can authenticate (secret_authentication_tokens is empty and the key store "
                 "holds no key): AUTHENTICATION IS DISABLED until a key is created with sapproxy-admin keys "
                 "create; anyone who can reach this port can use it ***")
