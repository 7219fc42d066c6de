"""
The gateway's configuration: the original Flask proxy's C{config.json}, plus optional keys of our own.

Parsing is strict because a typo in a gateway's config otherwise shows up hours later as a mysterious 404:
unknown keys are refused, every URL is checked, and every mistake is reported as one line naming the file
and the key path (C{config.json: subAccounts.acct1.service_key_json: file not found: keys/acct1.json}).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, cast
from urllib.parse import urlsplit

import cattrs
from attrs import Factory, field, frozen
from cattrs.gen import make_dict_structure_fn, override

from sapproxy.config.providers import (
    ProviderConfig, ProviderError, check_provider, format_exception, models_of, register_provider_hooks, split_key,
)
from sapproxy.ratelimit.address import parse_redis_url

#: api-version for Azure-OpenAI-style chat and embeddings deployments: the current GA version (the one SAP's own
#: AI SDK sends), which accepts every field the gateway sends (tools, parallel_tool_calls, stream_options,
#: response_format json_schema); 2023-05-15 predates all four.
DEFAULT_API_VERSION = "2024-10-21"
#: o-series and gpt-5: the version Azure documents for the reasoning models' current parameters
#: (reasoning_effort, max_completion_tokens, the developer role).
REASONING_API_VERSION = "2025-04-01-preview"
_REASONING = re.compile(r"(^|[^a-z])(o1|o3|o4|gpt-5)", re.IGNORECASE)


class ConfigError(Exception):
    """
    A user's mistake in the configuration; C{str()} is the one line to show them.
    """


@frozen
class ServiceKey:
    """
    The parts of an SAP AI Core service key the gateway uses; a real key carries many more, ignored here.
    """

    clientid: str
    clientsecret: str = field(repr=False)
    url: str
    identityzoneid: str | None = None
    ai_api_url: str | None = None
    #: C{"x509"} for a key whose client authenticates with a certificate (C{certificate}, C{key}, C{certurl})
    #: instead of a secret: its tokens come from C{certurl} over mutual TLS.
    credential_type: str = "binding-secret"
    certificate: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    certurl: str | None = None

    @property
    def x509(self) -> bool:
        return self.credential_type == "x509"

    @property
    def token_url(self) -> str:
        base = self.certurl if self.x509 and self.certurl else self.url
        return base.rstrip("/") + "/oauth/token?grant_type=client_credentials"


@frozen
class SubAccount:
    """
    @ivar deployment_models: configured deployment URLs per model (including those C{deployment_ids} named).
    @ivar discover: whether the deployments of this subaccount are also read from its AI API
        (C{GET /v2/lm/deployments}); true when C{deployment_models} is absent or empty.
    """

    name: str
    service_key: ServiceKey
    deployment_models: Mapping[str, tuple[str, ...]]
    resource_group: str = "default"
    discover: bool = False


@frozen
class ModelSettings:
    """
    Optional per-model settings, keyed by the configured model name in the top-level C{models} object.

    @ivar family: C{"openai"}, C{"claude"} or C{"gemini"}; derived from the name when absent.
    @ivar api_version: the Azure api-version for this model's chat calls.
    @ivar converse: serve this Claude model through Bedrock's C{/converse} APIs instead of C{/invoke}.
    @ivar upstream_model: the model id a Vertex path names (C{models/{id}:generateContent}).
    @ivar max_output_tokens: the most output tokens the model gives, sent as the limit when an OpenAI
        client sets none (Anthropic clients always do); the default comes from
        L{sapproxy.translate.model_limits.max_output_tokens}, and 4096 for models it does not know.
    @ivar responses_only: this GPT deployment answers only the Responses API (Azure's codex models): every
        client dialect reaches it through C{/responses}.
    """

    family: str | None = None
    api_version: str | None = None
    converse: bool = False
    upstream_model: str | None = None
    max_output_tokens: int | None = None
    responses_only: bool = False


@frozen
class Timeouts:
    """
    Seconds.  There is deliberately no total timeout: a healthy stream from a reasoning model may last
    half an hour, and only silence (C{idle}) says it is broken.
    """

    connect: float = 10.0
    headers: float = 300.0
    idle: float = 300.0
    keepalive: float = 15.0
    token: float = 30.0
    #: A client that reads nothing of its stream for this long is disconnected (and its upstream closed).
    write_stall: float = 300.0
    #: A client's request line and headers must arrive within this many seconds (also the idle time of a
    #: kept-alive connection), and its body within request_body seconds after them, however it trickles.
    request_headers: float = 60.0
    request_body: float = 300.0


@frozen
class RetryPolicy:
    """
    How hard to try before giving a client an error.

    @ivar attempts: upstream attempts per request in total, across all deployments.
    @ivar max_wait: the most seconds to spend waiting on C{Retry-After} and backoff for one request.
    @ivar backoff: the first backoff delay in seconds, doubled each time, with full jitter.
    @ivar cooldown: seconds a deployment that failed C{breaker_failures} times in a row is skipped.
    """

    attempts: int = 4
    max_wait: float = 30.0
    backoff: float = 0.5
    cooldown: float = 30.0
    breaker_failures: int = 3


@frozen
class SimulatorSettings:
    """
    Start the bundled simulated SAP AI Core in the gateway's own process (the embedded default).
    """

    port: int = 3099
    host: str = "127.0.0.1"
    event_delay: float = 0.0


@frozen
class TracingSettings:
    """
    OpenTelemetry: C{exporter} "otlp" (OTLP over HTTP to C{endpoint}) or "console".
    """

    exporter: str = "otlp"
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "sapproxy"


@frozen
class ImageFetchSettings:
    """
    Fetching C{https} image and PDF document URLs for upstreams that take only inline ones (Claude on
    Bedrock); see L{sapproxy.upstreams.image_fetch}.  With C{enabled} false such a request is answered with
    a 400.

    @ivar allow_http: also fetch plain C{http} URLs.
    @ivar allow_private_addresses: also fetch from loopback, private, link-local and other non-global
        addresses (tests against a local server; never in production).
    @ivar max_bytes: the largest image accepted.
    @ivar max_document_bytes: the largest PDF document accepted (Bedrock Converse takes 4.5 MB a document).
    @ivar timeout: seconds for the whole fetch, redirects included.
    @ivar max_redirects: redirects followed (each one checked like the first URL).
    """

    enabled: bool = True
    allow_http: bool = False
    allow_private_addresses: bool = False
    max_bytes: int = 5 * 1024 * 1024
    max_document_bytes: int = 4_500_000
    timeout: float = 10.0
    max_redirects: int = 3


@frozen
class ModelFilters:
    """
    Regular expressions (searched, as the FastAPI fork does) over model names, configured and discovered alike:
    when C{include_filters} is given only names matching one of them stay; then names matching any of
    C{exclude_filters} go.
    """

    include_filters: tuple[str, ...] = ()
    exclude_filters: tuple[str, ...] = ()

    def allows(self, name: str) -> bool:
        if self.include_filters and not any(re.search(p, name) for p in self.include_filters):
            return False
        return not any(re.search(p, name) for p in self.exclude_filters)


@frozen
class DiscoverySettings:
    """
    Deployment discovery from the AI API: every C{refresh_seconds} (jittered by up to C{jitter} of it), at
    once when a deployment answers 404 (no more often than every C{min_interval} seconds), and C{retry_seconds}
    after a failed refresh.
    """

    refresh_seconds: float = 300.0
    jitter: float = 0.2
    min_interval: float = 5.0
    retry_seconds: float = 30.0
    scenario: str = "foundation-models"


@frozen
class AffinitySettings:
    """
    Session affinity: requests that carry a session key go to the same healthy deployment.  C{header} names an
    extra request header to read a session key from (besides Claude Code's and Codex's own).
    """

    enabled: bool = True
    header: str | None = None


@frozen
class GatewayConfig:
    # path and subaccounts are filled in after the optional keys are structured (see _structure).
    path: Path = Path("config.json")
    subaccounts: Mapping[str, SubAccount] = Factory(dict)
    secret_authentication_tokens: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 3001
    models: Mapping[str, ModelSettings] = Factory(dict)
    aliases: Mapping[str, str] = Factory(dict)
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    usage_store: str = ""
    usage_retention_days: int = 90
    #: Days a stored Responses API response is kept for previous_response_id and GET (OpenAI keeps 30).
    responses_ttl_days: float = 30.0
    #: Where usage rows wait while the store is unavailable (and across a restart); "" is usage-spool.jsonl
    #: beside the config file.
    usage_spool: str = ""
    usage_spool_max_bytes: int = 64 * 1024 * 1024
    redis_url: str | None = None
    metrics_token: str | None = None
    #: Bearer token for the operator pages: /health's details and /metrics (metrics_token works too).
    ops_token: str | None = None
    simulator: SimulatorSettings | None = None
    #: Send a usage chunk on every translated OpenAI stream, as the original proxy's clients expect.
    always_include_usage: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    #: The request bodies of 1 MiB or more held at once, in bytes (each costs a few times its size while it is
    #: parsed and converted): a new one past it gets a 503 with Retry-After, one larger than it alone a 413.
    body_budget_bytes: int = 256 * 1024 * 1024
    #: The largest whole (non-stream) upstream response read; larger ones end in a 502.
    max_response_bytes: int = 64 * 1024 * 1024
    #: The longest line, and largest event, of an upstream event stream; longer ones end the stream (502).
    max_stream_event_bytes: int = 16 * 1024 * 1024
    drain_timeout: float = 30.0
    #: Upstream connections kept open per host between requests.
    pool_size: int = 256
    #: When a client hangs up mid-stream: "close" the upstream at once, or "drain" it (read to the end,
    #: writing nothing) so the usage row has the upstream's true token counts.
    on_client_hangup: str = "close"
    #: Log request and (whole) response bodies, redacted; off by default.
    log_bodies: bool = False
    #: Extra regular expressions whose matches are masked in logged bodies.
    redact_patterns: tuple[str, ...] = ()
    tracing: TracingSettings | None = None
    #: Upstreams beside SAP AI Core (L{sapproxy.config.providers}), by name, in config order.
    providers: Mapping[str, ProviderConfig] = Factory(dict)
    #: Failover order per model: subaccount and provider names; without it, SAP first, then providers.
    routing: Mapping[str, tuple[str, ...]] = Factory(dict)
    model_filters: ModelFilters = ModelFilters()
    discovery: DiscoverySettings = DiscoverySettings()
    session_affinity: AffinitySettings = AffinitySettings()
    #: Refuse (404) client model names that would be served by another generation of the model.
    strict_model_names: bool = False
    #: Keys of the original Flask proxy's or the FastAPI fork's configs that sapproxy accepts but has no use for.
    ignored_keys: tuple[str, ...] = ()
    image_fetch: ImageFetchSettings = ImageFetchSettings()
    #: Turns on the admin web page at C{/admin}; the token signs in (it is never put in a URL or a log).
    admin_token: str | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def served_by(self) -> dict[str, list[str]]:
        """
        Each configured model name and the subaccounts and providers that serve it, SAP first, in config order.
        """
        owners: dict[str, list[str]] = {}
        for account in self.subaccounts.values():
            for model in account.deployment_models:
                owners.setdefault(model, []).append(account.name)
        for name, provider in self.providers.items():
            for model in models_of(provider):
                owners.setdefault(model, []).append(name)
        return owners

    def route(self, model: str) -> list[str]:
        """
        The failover order for C{model}: the C{routing} entry, or SAP subaccounts first then providers.
        """
        return list(self.routing.get(model) or self.served_by.get(model, []))

    def catalog_settings(self) -> dict[str, ModelSettings]:
        """
        Per-model settings for the model catalog: the top-level C{models}, and the family a provider's model
        names for itself (its other settings are the provider's business).
        """
        out: dict[str, ModelSettings] = {}
        for provider in self.providers.values():
            for model, settings in models_of(provider).items():
                if settings.family:
                    out.setdefault(model, ModelSettings(family=settings.family))
        out.update(self.models)
        return out

    def model_settings(self, model: str) -> ModelSettings:
        return self.models.get(model) or ModelSettings()

    def api_version(self, model: str) -> str:
        configured = self.model_settings(model).api_version
        if configured:
            return configured
        return REASONING_API_VERSION if is_reasoning_model(model) else DEFAULT_API_VERSION


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING.search(model))


_TOP_LEVEL = {
    "subAccounts", "secret_authentication_tokens", "host", "port", "models", "aliases", "timeouts", "retry",
    "usage_store", "usage_retention_days", "responses_ttl_days", "usage_spool", "usage_spool_max_bytes",
    "redis_url", "metrics_token", "ops_token", "simulator", "always_include_usage",
    "max_body_bytes", "body_budget_bytes", "max_response_bytes", "max_stream_event_bytes", "drain_timeout", "pool_size",
    "on_client_hangup", "log_bodies", "redact_patterns", "tracing", "model_filters", "discovery",
    "session_affinity", "strict_model_names", "image_fetch", "admin_token", "providers", "routing",
    # The legacy single-account form.
    "service_key_json", "deployment_models", "resource_group", "deployment_ids",
}

_SUBACCOUNT_KEYS = ("service_key_json", "deployment_models", "resource_group", "deployment_ids")

#: Keys of the original Flask proxy's and the FastAPI fork's example configs that sapproxy has no use for:
#: accepted (so their config works unchanged) and named in one warning at start.
IGNORED_KEYS = {"hostLocal"}


def _converter() -> cattrs.Converter:
    c = cattrs.Converter(forbid_extra_keys=True)
    c.register_structure_hook(ServiceKey, _structure_service_key)

    def number(value: Any, kind: type) -> Any:
        # JSON's 3 is an acceptable float, but "3" and true are mistakes.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {json.dumps(value)}")
        if kind is int and not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value}")
        return kind(value)

    def string(value: Any, _: type) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {json.dumps(value)}")
        return value

    def boolean(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {json.dumps(value)}")
        return value

    c.register_structure_hook(int, number)
    c.register_structure_hook(float, number)
    c.register_structure_hook(str, string)
    c.register_structure_hook(bool, boolean)
    register_provider_hooks(c)
    # After the scalar hooks: structure functions are generated against the hooks registered so far.
    for cls in (ModelSettings, Timeouts, RetryPolicy, SimulatorSettings, TracingSettings, DiscoverySettings,
                AffinitySettings, ImageFetchSettings):
        c.register_structure_hook(cls, make_dict_structure_fn(cls, c, _cattrs_forbid_extra_keys=True))
    c.register_structure_hook(
        GatewayConfig,
        make_dict_structure_fn(
            GatewayConfig, c, _cattrs_forbid_extra_keys=False, path=override(omit=True),
            subaccounts=override(omit=True), ignored_keys=override(omit=True), model_filters=override(omit=True),
        ),
    )
    return c


def _model_filters(raw: Any) -> ModelFilters:
    """
    C{model_filters}: C{include_filters}/C{exclude_filters} (the fork's current names) or C{include}/C{exclude}
    (its first ones), each a list of regular expressions.
    """
    if not isinstance(raw, dict):
        raise _PathError("model_filters", "expected an object with include_filters and/or exclude_filters")
    found: dict[str, tuple[str, ...]] = {"include_filters": (), "exclude_filters": ()}
    for key, value in raw.items():
        name = {"include": "include_filters", "exclude": "exclude_filters"}.get(key, key)
        if name not in found:
            raise _PathError(f"model_filters.{key}", "unknown key (check its spelling)")
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise _PathError(f"model_filters.{key}", "expected a list of regular expressions")
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as e:
                raise _PathError(f"model_filters.{key}[{i}]", f"not a regular expression: {e}") from None
        found[name] = found[name] + tuple(value)
    return ModelFilters(**found)


def _structure_service_key(raw: Any, _: type) -> ServiceKey:
    if not isinstance(raw, dict):
        raise ValueError("expected an object")
    # A key as BTP shows it in a binding may nest its credentials one level down.
    if "clientid" not in raw and isinstance(raw.get("credentials"), dict):
        raw = raw["credentials"]
    credential_type = raw.get("credential-type") or "binding-secret"
    x509 = credential_type == "x509"
    required = ("clientid", "url", "certificate", "key", "certurl") if x509 else ("clientid", "clientsecret", "url")
    missing = [k for k in required if not raw.get(k)]
    if missing:
        raise _KeyError(missing[0], "missing" + (" (an X.509 service key needs certificate, key and certurl)"
                                                  if x509 else ""))
    for k in required:
        if not isinstance(raw[k], str):
            raise _KeyError(k, "expected a string")
    _check_url(raw["url"], "url")
    if x509:
        _check_url(raw["certurl"], "certurl")
        for k in ("certificate", "key"):
            if "-----BEGIN" not in raw[k]:
                raise _KeyError(k, "expected a PEM block (-----BEGIN ...)")
    urls = raw.get("serviceurls") or {}
    ai_api_url = urls.get("AI_API_URL") if isinstance(urls, dict) else None
    if ai_api_url is not None:
        _check_url(ai_api_url, "serviceurls.AI_API_URL")
    return ServiceKey(
        clientid=raw["clientid"],
        clientsecret=raw.get("clientsecret") or "",
        url=raw["url"],
        identityzoneid=raw.get("identityzoneid") or None,
        ai_api_url=ai_api_url.rstrip("/") if ai_api_url else None,
        credential_type=credential_type,
        certificate=raw.get("certificate") if x509 else None,
        private_key=raw.get("key") if x509 else None,
        certurl=raw.get("certurl") if x509 else None,
    )


class _KeyError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _check_url(url: Any, key: str) -> None:
    if not isinstance(url, str):
        raise _KeyError(key, f"expected a URL string, got {json.dumps(url)}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _KeyError(key, f"not an http(s) URL: {url}")


def load_config(path: str | Path, *, host: str | None = None, port: int | None = None) -> GatewayConfig:
    """
    Read, check and structure a configuration file.

    @raise ConfigError: with one line naming the file and the key path of the first mistake.
    """
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{label}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a JSON object at the top level")
    try:
        raw = _with_simulator_origin(raw)
    except _PathError as e:
        raise ConfigError(f"{label}: {e.path}: {e}") from None
    if host is not None:
        raw["host"] = host
    if port is not None:
        raw["port"] = port
    try:
        return _structure(raw, path.resolve())
    except _PathError as e:
        raise ConfigError(f"{label}: {e.path}: {e}") from None


#: Stands, in any URL of the config, for the embedded simulator's origin (C{http://host:port} of its C{simulator}
#: block), so that the simulator's port is written in one place.
SIMULATOR_ORIGIN = "${SIMULATOR}"


def _with_simulator_origin(raw: dict[str, Any]) -> dict[str, Any]:
    """
    C{raw} with every C{${SIMULATOR}} in a string replaced by the simulator's origin.  The config keeps the
    original proxy's shape (service keys and deployment URLs are still URL strings); only their origin is
    written once.
    """
    if SIMULATOR_ORIGIN not in json.dumps(raw):
        return raw
    settings = raw.get("simulator")
    if not isinstance(settings, dict):
        raise _PathError("simulator", f"missing, but {SIMULATOR_ORIGIN} is used in a URL (it stands for the "
                         "embedded simulator's http://host:port)")
    host = settings.get("host", SimulatorSettings().host)
    port = settings.get("port", SimulatorSettings().port)
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        raise _PathError("simulator", "host must be a string and port a whole number")
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    origin = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    def substitute(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(SIMULATOR_ORIGIN, origin)
        if isinstance(value, list):
            return [substitute(v) for v in value]
        if isinstance(value, dict):
            return {k: substitute(v) if k != "simulator" else v for k, v in value.items()}
        return value

    return cast(dict[str, Any], substitute(raw))


class _PathError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _structure(raw: dict[str, Any], path: Path) -> GatewayConfig:
    unknown = sorted(set(raw) - _TOP_LEVEL - IGNORED_KEYS)
    if unknown:
        raise _PathError(unknown[0], "unknown key (check its spelling)")
    ignored = tuple(sorted(set(raw) & IGNORED_KEYS))
    raw = {k: v for k, v in raw.items() if k not in IGNORED_KEYS}
    filters = _model_filters(raw.pop("model_filters")) if raw.get("model_filters") is not None else ModelFilters()
    raw.pop("model_filters", None)
    accounts_raw = raw.get("subAccounts")
    legacy = {k: raw[k] for k in _SUBACCOUNT_KEYS if k in raw}
    if accounts_raw is not None and legacy:
        raise _PathError(next(iter(legacy)), "give either subAccounts or the single-account keys, not both")
    if accounts_raw is None:
        if not legacy and not raw.get("providers"):
            raise _PathError("subAccounts", "missing (no subaccount is configured)")
        accounts_raw = {"default": legacy} if legacy else {}
        prefix = ""
    else:
        prefix = "subAccounts."
        if not isinstance(accounts_raw, dict) or not accounts_raw:
            raise _PathError("subAccounts", "expected an object with at least one subaccount")
    subaccounts = {
        name: _subaccount(name, body, f"{prefix}{name}." if prefix else "", path.parent)
        for name, body in accounts_raw.items()
    }
    rest = {k: v for k, v in raw.items() if k not in ("subAccounts", *legacy)}
    tokens = rest.get("secret_authentication_tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise _PathError("secret_authentication_tokens", "expected a list of non-empty strings")
    rest["secret_authentication_tokens"] = tuple(tokens)
    converter = _converter()
    try:
        config = converter.structure(rest, GatewayConfig)
    except cattrs.BaseValidationError as e:
        where, message = _first_error(e)
        raise _PathError(where, message) from None
    config = _evolve(config, path=path, subaccounts=subaccounts, ignored_keys=ignored, model_filters=filters,
                     providers={name: evolve_name(p, name) for name, p in config.providers.items()})
    _check_providers(config)
    _check_semantics(config)
    return config


def _evolve(config: GatewayConfig, **changes: Any) -> GatewayConfig:
    from attrs import evolve

    if not config.usage_store and "path" in changes:
        changes["usage_store"] = "sqlite:///" + str(changes["path"].parent / "usage.db")
    if "path" in changes:
        spool = Path(config.usage_spool or "usage-spool.jsonl")
        changes["usage_spool"] = str(spool if spool.is_absolute() else changes["path"].parent / spool)
    return evolve(config, **changes)


def evolve_name(provider: Any, name: str) -> Any:
    from attrs import evolve

    return evolve(provider, name=name)


def _check_providers(config: GatewayConfig) -> None:
    for name, provider in config.providers.items():
        if name in config.subaccounts:
            raise _PathError(f"providers.{name}", "a subaccount has the same name; names must be unique")
        try:
            check_provider(provider, config.directory)
        except ProviderError as e:
            raise _PathError(f"providers.{name}.{e.key}", str(e)) from None
    owners = config.served_by
    # A subaccount that discovers its deployments serves models known only at run time.
    discovering = {name for name, account in config.subaccounts.items() if account.discover}
    for model, names in config.routing.items():
        if model not in owners and not discovering:
            raise _PathError(f"routing.{model}", "no subaccount or provider serves this model")
        if not names:
            raise _PathError(f"routing.{model}", "expected a non-empty list of subaccount or provider names")
        for i, name in enumerate(names):
            if name not in config.subaccounts and name not in config.providers:
                raise _PathError(f"routing.{model}[{i}]", f"{name} is neither a subaccount nor a provider")
            if name not in owners.get(model, ()) and name not in discovering:
                raise _PathError(f"routing.{model}[{i}]", f"{name} does not serve {model}")


def _first_error(e: cattrs.BaseValidationError) -> tuple[str, str]:
    for line in cattrs.transform_error(e, path="$", format_exception=format_exception):
        message, _, where = line.rpartition(" @ ")
        where = where.removeprefix("$").lstrip(".")
        where = re.sub(r"\['([^']*)'\]", r".\1", where).lstrip(".")
        key, message = split_key(message)
        if key is not None:
            where = f"{where}.{key}" if where else key
        if "extra fields found" in message:
            extra = message.split("(", 1)[-1].rstrip(")")
            return (f"{where}.{extra}" if where else extra), "unknown key (check its spelling)"
        return where or "(top level)", message.replace("invalid value for type, expected ", "expected ")
    return "(top level)", str(e)


def _subaccount(name: str, body: Any, prefix: str, directory: Path) -> SubAccount:
    if not isinstance(body, dict):
        raise _PathError(prefix.rstrip(".") or name, "expected an object")
    allowed = set(_SUBACCOUNT_KEYS)
    for key in body:
        if key not in allowed:
            raise _PathError(prefix + key, "unknown key (check its spelling)")
    key_raw = body.get("service_key_json")
    where = prefix + "service_key_json"
    if key_raw is None:
        raise _PathError(where, "missing")
    if isinstance(key_raw, str):
        key_path = Path(key_raw)
        full = key_path if key_path.is_absolute() else directory / key_path
        try:
            key_raw = json.loads(full.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _PathError(where, f"file not found: {key_path}") from None
        except OSError as e:
            raise _PathError(where, f"cannot read {key_path}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise _PathError(where, f"invalid JSON in {key_path} at line {e.lineno}: {e.msg}") from None
    try:
        service_key = _structure_service_key(key_raw, ServiceKey)
    except _KeyError as e:
        raise _PathError(f"{where}.{e.key}", str(e)) from None
    except ValueError as e:
        raise _PathError(where, str(e)) from None
    models_raw = body.get("deployment_models")
    where = prefix + "deployment_models"
    if models_raw is None:
        models_raw = {}
    if not isinstance(models_raw, dict):
        raise _PathError(where, "expected an object mapping model names to deployment URLs")
    models: dict[str, tuple[str, ...]] = {}
    for model, urls in models_raw.items():
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls:
            raise _PathError(f"{where}.{model}", "expected a non-empty list of deployment URLs")
        for i, url in enumerate(urls):
            try:
                _check_url(url, str(i))
            except _KeyError as e:
                raise _PathError(f"{where}.{model}[{i}]", str(e)) from None
        models[model] = tuple(u.rstrip("/") for u in urls)
    ids_raw = body.get("deployment_ids") or {}
    where = prefix + "deployment_ids"
    if not isinstance(ids_raw, dict):
        raise _PathError(where, "expected an object mapping model names to deployment ids")
    for model, ids in ids_raw.items():
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and re.fullmatch(r"[\w.-]+", i)
                                                            for i in ids):
            raise _PathError(f"{where}.{model}", "expected a non-empty list of deployment ids (like d1a2b3c4)")
        if not service_key.ai_api_url:
            raise _PathError(f"{where}.{model}", "deployment ids need serviceurls.AI_API_URL in the service key")
        urls = tuple(f"{service_key.ai_api_url}/v2/inference/deployments/{i}" for i in ids)
        models[model] = tuple(dict.fromkeys(models.get(model, ()) + urls))
    discover = not models_raw
    if discover and not service_key.ai_api_url:
        raise _PathError(prefix + "deployment_models", "missing, and the service key has no serviceurls.AI_API_URL "
                         "to discover deployments from")
    group = body.get("resource_group", "default")
    if not isinstance(group, str) or not group:
        raise _PathError(prefix + "resource_group", "expected a non-empty string")
    return SubAccount(name=name, service_key=service_key, deployment_models=models, resource_group=group,
                      discover=discover)


#: Every number's accepted range, (key path, lowest, lowest is allowed, highest): a value outside stops all
#: traffic or makes no sense (timeouts.headers 0 made every request a 504; retry.attempts 0 a 500).
_RANGES: list[tuple[str, float, bool, float]] = [
    ("timeouts.connect", 0, False, 3600), ("timeouts.headers", 0, False, 86400), ("timeouts.idle", 0, False, 86400),
    ("timeouts.keepalive", 0, False, 3600), ("timeouts.token", 0, False, 3600),
    ("timeouts.write_stall", 0, False, 86400), ("timeouts.request_headers", 0, False, 3600),
    ("timeouts.request_body", 0, False, 86400),
    ("retry.attempts", 1, True, 100), ("retry.max_wait", 0, True, 3600), ("retry.backoff", 0, True, 600),
    ("retry.cooldown", 0, True, 86400), ("retry.breaker_failures", 1, True, 1000),
    ("max_body_bytes", 1, True, 1 << 40), ("body_budget_bytes", 1 << 20, True, 1 << 40),
    ("max_response_bytes", 1024, True, 1 << 40),
    ("max_stream_event_bytes", 1024, True, 1 << 30),
    ("drain_timeout", 0, True, 86400), ("pool_size", 0, True, 100_000),
    ("usage_spool_max_bytes", 0, True, 1 << 40), ("usage_retention_days", 1, True, 36500),
    ("responses_ttl_days", 0, False, 3650),
    ("discovery.refresh_seconds", 1, True, 86400), ("discovery.jitter", 0, True, 1),
    ("discovery.min_interval", 0, True, 86400), ("discovery.retry_seconds", 0, False, 86400),
    ("simulator.port", 1, True, 65535), ("simulator.event_delay", 0, True, 60),
]


def _check_ranges(config: GatewayConfig) -> None:
    for where, low, inclusive, high in _RANGES:
        value: Any = config
        for part in where.split("."):
            value = getattr(value, part) if value is not None else None
        if value is None:
            continue
        ok = math.isfinite(value) and (value >= low if inclusive else value > low) and value <= high
        if not ok:
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            raise _PathError(where, f"expected a number {bound} and <= {high:g}, got {value}")


def _check_semantics(config: GatewayConfig) -> None:
    _check_ranges(config)
    served = set(config.served_by)
    discovering = any(account.discover for account in config.subaccounts.values())
    for model, settings in config.models.items():
        if settings.family not in (None, "openai", "claude", "gemini"):
            raise _PathError(f"models.{model}.family", "expected openai, claude or gemini")
        if settings.max_output_tokens is not None and settings.max_output_tokens < 1:
            raise _PathError(f"models.{model}.max_output_tokens", "expected a positive integer")
    for alias, target in config.aliases.items():
        # Discovered names are known only at run time; an alias to one is checked when it is used.
        if target not in served and not discovering:
            raise _PathError(f"aliases.{alias}", f"names {target}, which no subaccount or provider serves")
    if not 0 < config.port < 65536:
        raise _PathError("port", f"expected a TCP port, got {config.port}")
    for i, pattern in enumerate(config.redact_patterns):
        try:
            re.compile(pattern)
        except re.error as e:
            raise _PathError(f"redact_patterns[{i}]", f"not a regular expression: {e}") from None
    if config.tracing is not None and config.tracing.exporter not in ("otlp", "console"):
        raise _PathError("tracing.exporter", "expected otlp or console")
    fetch = config.image_fetch
    if fetch.max_bytes < 1 or fetch.max_document_bytes < 1 or fetch.timeout <= 0 or fetch.max_redirects < 0:
        raise _PathError("image_fetch", "expected max_bytes >= 1, max_document_bytes >= 1, timeout > 0 and "
                         "max_redirects >= 0")
    if config.admin_token is not None and len(config.admin_token) < 16:
        raise _PathError("admin_token", "too short: use at least 16 characters (e.g. from: openssl rand -hex 24)")
    if config.on_client_hangup not in ("close", "drain"):
        raise _PathError("on_client_hangup", "expected close or drain")
    store = config.usage_store
    if not (store.startswith("sqlite:///") or store.startswith(("postgresql://", "postgres://"))):
        raise _PathError("usage_store", "expected sqlite:///PATH or postgresql://...")
    if config.redis_url:
        try:
            parse_redis_url(config.redis_url)
        except ValueError as e:
            raise _PathError("redis_url", str(e)) from None
