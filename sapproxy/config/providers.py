"""
The C{providers} section of the config: upstreams other than SAP AI Core, one entry per account.

C{"providers": {"NAME": {"kind": "openai" | "azure-openai" | "anthropic" | "bedrock" | "gemini", ...}}} is a
cattrs union tagged on C{kind}: each kind is one frozen class below, structured as strictly as the rest of the
config (unknown keys refused, URLs checked) so a typo stops start-up with one line naming the key path.

Secrets are written literally or as C{"env:VAR"} (read from the environment when the config is loaded, so a
reload picks up a rotated key); they never print: L{Secret}'s repr names only where the value came from.

C{models} is a list of names (the upstream id is the client-facing name) or a map of client-facing name to
the upstream's model id, or to an object of per-model settings as under the top-level C{models}
(C{upstream_model}, C{family}, C{api_version}, C{converse}).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Union
from urllib.parse import urlsplit

import cattrs
from attrs import Factory, field, frozen
from cattrs.gen import make_dict_structure_fn, override

KINDS = ("openai", "azure-openai", "anthropic", "bedrock", "gemini")
FAMILIES = ("openai", "claude", "gemini")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


@frozen(repr=False)
class Secret:
    """
    A credential from the config: C{value} is the secret itself, C{source} says where it came from
    (C{"literal"} or C{"env:VAR"}) and is all that C{repr} and C{str} show.
    """

    value: str
    source: str = "literal"

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


@frozen
class ProviderModel:
    """
    One model a provider serves.

    @ivar upstream_model: the id the upstream knows it by (in the body, the path or the Bedrock URL).
    @ivar family: the wire family (openai, claude, gemini); by default the provider's.
    @ivar converse: (Bedrock) serve a Claude model through C{converse}/C{converse-stream} instead of
        C{invoke}; Bedrock models that are not Anthropic's (Amazon Nova, Meta Llama, ...) always are.
    """

    upstream_model: str
    family: str | None = None
    api_version: str | None = None
    converse: bool = False


@frozen
class OpenAIProvider:
    """
    Any OpenAI-compatible server: OpenAI itself, vLLM, Ollama's C{/v1}, LM Studio.
    """

    base_url: str
    models: Mapping[str, ProviderModel]
    api_key: Secret | None = None
    headers: Mapping[str, str] = Factory(dict)
    kind: str = "openai"
    name: str = ""


@frozen
class AzureOpenAIProvider:
    """
    An Azure OpenAI resource: C{{endpoint}/openai/deployments/{deployment}/...?api-version=}, C{api-key} header.
    """

    endpoint: str
    api_key: Secret
    deployments: Mapping[str, str]
    api_version: str = "2024-10-21"
    models: Mapping[str, ProviderModel] = Factory(dict)
    kind: str = "azure-openai"
    name: str = ""


@frozen
class AnthropicProvider:
    """
    Anthropic's Messages API (C{x-api-key}, C{anthropic-version}); C{betas} travel as C{anthropic-beta}.
    """

    api_key: Secret
    models: Mapping[str, ProviderModel]
    base_url: str = "https://api.anthropic.com"
    betas: tuple[str, ...] = ()
    version: str = "2023-06-01"
    kind: str = "anthropic"
    name: str = ""


@frozen
class BedrockProvider:
    """
    Amazon Bedrock runtime, signed with SigV4; credentials from boto3's own chain (optionally a C{profile},
    optionally assuming C{role_arn}).
    """

    region: str
    models: Mapping[str, ProviderModel]
    endpoint_url: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    kind: str = "bedrock"
    name: str = ""

    @property
    def url(self) -> str:
        return (self.endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip("/")


@frozen
class VertexSettings:
    """
    Gemini on Vertex AI, authorised as a service account (its key file, relative to the config file); needs
    the optional C{google-auth} package.
    """

    project: str
    location: str
    service_account_file: str
    endpoint_url: str | None = None

    @property
    def url(self) -> str:
        base = self.endpoint_url or f"https://{self.location}-aiplatform.googleapis.com"
        return f"{base.rstrip('/')}/v1/projects/{self.project}/locations/{self.location}/publishers/google"


@frozen
class GeminiProvider:
    """
    The Gemini API (C{x-goog-api-key}), or Vertex AI with a service account (C{vertex}).
    """

    models: Mapping[str, ProviderModel]
    api_key: Secret | None = None
    base_url: str = "https://generativelanguage.googleapis.com/v1beta"
    vertex: VertexSettings | None = None
    kind: str = "gemini"
    name: str = ""


ProviderConfig = Union[OpenAIProvider, AzureOpenAIProvider, AnthropicProvider, BedrockProvider, GeminiProvider]
PROVIDER_CLASSES: dict[str, type] = {
    "openai": OpenAIProvider, "azure-openai": AzureOpenAIProvider, "anthropic": AnthropicProvider,
    "bedrock": BedrockProvider, "gemini": GeminiProvider,
}



class Explained(ValueError):
    """
    A structuring mistake whose own message is the one to show (not cattrs' "expected <type>").
    """


class ProviderError(Explained):
    """
    A mistake inside one provider's entry; C{key} is the path below C{providers.NAME}.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def format_exception(exc: BaseException, type_: Any) -> str:
    """
    For C{cattrs.transform_error}: L{Explained} errors keep their message (a L{ProviderError}'s key goes
    before it, split off by L{split_key}); the rest as cattrs words them.
    """
    if isinstance(exc, ProviderError):
        return f"{exc.key}\x1f{exc}"
    if isinstance(exc, Explained):
        return str(exc)
    from cattrs.v import format_exception as default

    return default(exc, type_)


def split_key(message: str) -> tuple[str | None, str]:
    key, sep, rest = message.partition("\x1f")
    return (key, rest) if sep else (None, message)


def _secret(raw: Any, _: type) -> Secret:
    if not isinstance(raw, str) or not raw:
        raise Explained("expected a non-empty string (the secret, or env:VARIABLE)")
    if raw.startswith("env:"):
        name = raw[4:]
        if not _ENV_NAME.match(name):
            raise Explained(f"env:{name} is not an environment variable name")
        value = os.environ.get(name)
        if not value:
            raise Explained(f"environment variable {name} is not set")
        return Secret(value, raw)
    return Secret(raw)


def _is_model_map(t: Any) -> bool:
    return t == Mapping[str, ProviderModel]


def register_provider_hooks(c: cattrs.Converter) -> None:
    """
    Teach C{c} (the config's strict converter, scalar hooks already registered) the providers section.
    """
    c.register_structure_hook(Secret, _secret)
    settings = make_dict_structure_fn(ProviderModel, c, _cattrs_forbid_extra_keys=True)

    def models(raw: Any, _: type) -> dict[str, ProviderModel]:
        if isinstance(raw, list):
            out = {}
            for item in raw:
                if not isinstance(item, str) or not item:
                    raise Explained(f"expected model names, got {json.dumps(item)}")
                out[item] = ProviderModel(item)
            return out
        if not isinstance(raw, dict):
            raise Explained("expected a list of model names or an object of name -> upstream model id")
        result = {}
        for name, value in raw.items():
            if isinstance(value, str) and value:
                result[name] = ProviderModel(value)
            elif isinstance(value, dict):
                body = {"upstream_model": name, **value}
                try:
                    result[name] = settings(body, ProviderModel)
                except cattrs.BaseValidationError as e:
                    key, message = _flat(e)
                    raise ProviderError(f"{name}.{key}" if key else name, message) from None
            else:
                raise ProviderError(name, "expected the upstream model id or an object of settings")
        return result

    c.register_structure_hook_func(_is_model_map, models)
    c.register_structure_hook(VertexSettings, make_dict_structure_fn(VertexSettings, c, _cattrs_forbid_extra_keys=True))
    functions: dict[str, Callable[[Any, type], Any]] = {
        kind: make_dict_structure_fn(cls, c, _cattrs_forbid_extra_keys=True, name=override(omit=True))
        for kind, cls in PROVIDER_CLASSES.items()
    }

    def provider(raw: Any, _: type) -> Any:
        if not isinstance(raw, dict):
            raise Explained("expected an object with a kind")
        kind = raw.get("kind")
        if kind not in PROVIDER_CLASSES:
            raise ProviderError("kind", f"expected one of {', '.join(KINDS)}, got {json.dumps(kind)}")
        return functions[kind](raw, PROVIDER_CLASSES[kind])

    c.register_structure_hook(ProviderConfig, provider)  # type: ignore[arg-type]


def _flat(e: cattrs.BaseValidationError) -> tuple[str, str]:
    for line in cattrs.transform_error(e, path="$", format_exception=format_exception):
        message, _, where = line.rpartition(" @ ")
        where = where.removeprefix("$").lstrip(".")
        if "extra fields found" in message:
            return message.split("(", 1)[-1].rstrip(")"), "unknown key (check its spelling)"
        return where, message.replace("invalid value for type, expected ", "expected ")
    return "", str(e)


def check_provider(p: Any, directory: Path | None = None) -> None:
    """
    What the types alone cannot say: URLs, a region, models to serve, a way to authenticate.

    @param directory: the config file's, which relative file names are read from.
    @raise ProviderError: naming the key below C{providers.NAME}.
    """
    for key in ("base_url", "endpoint", "endpoint_url"):
        value = getattr(p, key, None)
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ProviderError(key, f"not an http(s) URL: {value}")
    if isinstance(p, AzureOpenAIProvider):
        if not p.deployments:
            raise ProviderError("deployments", "expected an object of model name -> Azure deployment name")
        for model in p.models:
            if model not in p.deployments:
                raise ProviderError(f"models.{model}", "has no entry in deployments")
    if isinstance(p, BedrockProvider) and not _REGION.match(p.region):
        raise ProviderError("region", f"not an AWS region: {p.region}")
    if isinstance(p, GeminiProvider):
        _check_gemini(p, directory)
    if isinstance(p, OpenAIProvider):
        for header in p.headers:
            if not re.match(r"^[A-Za-z0-9-]+$", header):
                raise ProviderError(f"headers.{header}", "not an HTTP header name")
    if not models_of(p):
        raise ProviderError("models", "expected at least one model")
    for model, settings in models_of(p).items():
        if settings.family is not None and settings.family not in FAMILIES:
            raise ProviderError(f"models.{model}.family", "expected openai, claude or gemini")
        if not settings.upstream_model:
            raise ProviderError(f"models.{model}", "expected a non-empty upstream model id")


def _check_gemini(p: GeminiProvider, directory: Path | None) -> None:
    if (p.api_key is None) == (p.vertex is None):
        raise ProviderError("api_key", "give api_key for the Gemini API, or vertex for Vertex AI (not both)")
    vertex = p.vertex
    if vertex is None:
        return
    if vertex.endpoint_url is not None:
        parts = urlsplit(vertex.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderError("vertex.endpoint_url", f"not an http(s) URL: {vertex.endpoint_url}")
    if importlib.util.find_spec("google") is None or importlib.util.find_spec("google.oauth2") is None:
        raise ProviderError("vertex", "needs the google-auth package (pip install 'sapproxy[vertex]')")
    path = service_account_path(vertex, directory)
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProviderError("vertex.service_account_file", f"file not found: {vertex.service_account_file}") from None
    except (OSError, ValueError) as e:
        raise ProviderError("vertex.service_account_file", f"cannot read {vertex.service_account_file}: "
                            f"{getattr(e, 'strerror', None) or 'not JSON'}") from None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ProviderError("vertex.service_account_file", "not a service account key file (type service_account)")


def service_account_path(vertex: VertexSettings, directory: Path | None) -> Path:
    path = Path(vertex.service_account_file)
    return path if path.is_absolute() or directory is None else directory / path


def models_of(p: Any) -> Mapping[str, ProviderModel]:
    """
    The models a provider serves, by client-facing name; Azure's default to its deployments' names.
    """
    if isinstance(p, AzureOpenAIProvider) and not p.models:
        return {m: ProviderModel(m) for m in p.deployments}
    models: Mapping[str, ProviderModel] = p.models
    return models
