"""
C{sapproxy-admin deployments} and C{sapproxy-admin resource-groups}: what each subaccount's SAP AI Core tenant
has, read straight from its AI API with the config's service keys (the same calls the gateway makes).

Plain blocking HTTP (urllib): a command-line tool, run once.  It honours C{HTTPS_PROXY}/C{NO_PROXY} as
urllib does, and presents the certificate of an X.509 service key to its token endpoint.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from typing import Any, TextIO

from sapproxy.config import GatewayConfig, ServiceKey, SubAccount
from sapproxy.upstreams.sap_credentials import token_request
from sapproxy.upstreams.sap_discovery import parse_deployments


class TenantError(Exception):
    """
    One subaccount's tenant could not be read; C{str()} says why, without secrets.
    """


def _tls_context(key: ServiceKey) -> ssl.SSLContext | None:
    if not key.x509:
        return None
    context = ssl.create_default_context()
    assert key.certificate and key.private_key
    with tempfile.TemporaryDirectory() as directory:
        cert, private = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        with open(cert, "w", encoding="ascii") as f:
            f.write(key.certificate)
        with open(private, "w", encoding="ascii") as f:
            f.write(key.private_key)
        context.load_cert_chain(cert, private)
    return context


def _call(url: str, *, method: str = "GET", headers: dict[str, str], data: bytes | None = None,
          context: ssl.SSLContext | None = None, timeout: float = 30.0) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise TenantError(f"{method} {url.split('?', 1)[0]} answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TenantError(f"{method} {url.split('?', 1)[0]} failed: {reason}") from None
    except ValueError:
        raise TenantError(f"{method} {url.split('?', 1)[0]} answered with a body that is not JSON") from None


def fetch_token(key: ServiceKey, timeout: float = 30.0) -> str:
    headers, form = token_request(key)
    grant = _call(key.token_url, method="POST", headers=headers, data=form, context=_tls_context(key),
                  timeout=timeout)
    if not isinstance(grant, dict) or "access_token" not in grant:
        raise TenantError("the token endpoint answered without an access_token")
    return str(grant["access_token"])


def ai_api(account: SubAccount, token: str, path: str, *, group: bool = True) -> Any:
    base = account.service_key.ai_api_url
    if not base:
        raise TenantError("the service key has no serviceurls.AI_API_URL")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if group:
        headers["AI-Resource-Group"] = account.resource_group
    return _call(base + path, headers=headers)


def deployments(config: GatewayConfig, out: TextIO, table: Any) -> int:
    """
    Every deployment of every subaccount's resource group: model, status, whether the gateway serves it and
    whether it is configured or discovered.  Exit code 1 when some subaccount could not be read.
    """
    rows: list[list[str]] = []
    failed = 0
    for name, account in config.subaccounts.items():
        configured = {url.rsplit("/", 1)[-1]: model for model, urls in account.deployment_models.items()
                      for url in urls}
        try:
            token = fetch_token(account.service_key)
            found = parse_deployments(ai_api(account, token, "/v2/lm/deployments"))
        except Exception as e:
            failed += 1
            rows.append([name, account.resource_group, "-", "-", "-", f"error: {e}", ""])
            continue
        seen = set()
        for d in found:
            seen.add(d.id)
            served = d.status == "RUNNING" and d.scenario == config.discovery.scenario and d.url != ""
            origin = "configured" if d.id in configured else ("discovered" if account.discover and served else "")
            rows.append([name, account.resource_group, d.model, d.id, d.status,
                         "served" if (origin and config.model_filters.allows(configured.get(d.id, d.model)))
                         else "not served", origin])
        for dep_id, model in configured.items():
            if dep_id not in seen:
                rows.append([name, account.resource_group, model, dep_id, "NOT FOUND", "stale (configured)",
                             "configured"])
    table(["subaccount", "resource_group", "model", "deployment", "status", "gateway", "origin"], rows, out)
    return 1 if failed else 0


def resource_groups(config: GatewayConfig, out: TextIO, table: Any) -> int:
    rows: list[list[str]] = []
    failed = 0
    for name, account in config.subaccounts.items():
        try:
            token = fetch_token(account.service_key)
            body = ai_api(account, token, "/v2/admin/resourceGroups", group=False)
        except Exception as e:
            failed += 1
            rows.append([name, "-", f"error: {e}", ""])
            continue
        for group in body.get("resources", []) if isinstance(body, dict) else []:
            gid = str(group.get("resourceGroupId", ""))
            rows.append([name, gid, str(group.get("status", "")),
                         "yes" if gid == account.resource_group else ""])
    table(["subaccount", "resource_group", "status", "configured"], rows, out)
    return 1 if failed else 0
