"""
C{sapproxy-admin configure CLIENT}: each coding client's configuration for this gateway, with the model names
it serves.

Pure: from the gateway's base URL, its models (name -> family) and an optional key, a L{ClientSetup} holds the
file to write (its path under the user's home, its text) and what to tell the user.  Formats, as each client
documents them:

 - Claude Code: C{~/.claude/settings.json}, an C{env} block with C{ANTHROPIC_BASE_URL} (the root; it appends
   C{/v1/messages}), C{ANTHROPIC_AUTH_TOKEN} (sent as a bearer token) or, with no key given, an
   C{apiKeyHelper} command that prints C{$SAPPROXY_API_KEY}; C{ANTHROPIC_MODEL} and the opus/sonnet/haiku
   defaults mapped to served Claude models.
 - Codex CLI: C{~/.codex/config.toml}, C{model_provider} naming a C{[model_providers.sapproxy]} table with
   C{base_url} (ending in C{/v1}), C{env_key} (the variable holding the key) and C{wire_api = "responses"}.
 - Gemini CLI: C{~/.gemini/.env} with C{GOOGLE_GEMINI_BASE_URL}, C{GEMINI_API_KEY} and C{GEMINI_MODEL}.
 - OpenCode: C{~/.config/opencode/opencode.json}, a C{provider} per API (C{@ai-sdk/anthropic} for Claude,
   C{@ai-sdk/openai-compatible} for the rest) with C{options.baseURL}, C{options.apiKey} (C{{env:VAR}} when
   no key is given) and the served C{models}.
 - Aider: C{~/.aider.conf.yml} with C{openai-api-base}, C{openai-api-key}, C{model: openai/<name>} and an
   C{alias} per served model.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from attrs import frozen

CLIENTS = ("claude", "codex", "gemini", "opencode", "aider")
KEY_VARIABLE = "SAPPROXY_API_KEY"


@frozen
class ClientSetup:
    """
    @ivar path: where the client reads it, relative to the user's home directory.
    @ivar text: the file's content.
    @ivar notes: lines for the user: how to run the client, what the gateway must serve for it.
    @ivar needs_route: the gateway route the client calls, to warn when this gateway does not serve it.
    @ivar merge_json: the file is JSON whose top-level objects may be merged into an existing file.
    """

    client: str
    path: str
    text: str
    notes: tuple[str, ...]
    needs_route: str
    merge_json: bool = False


def _pick(models: Mapping[str, str], family: str, prefer: Sequence[str] = ()) -> str | None:
    names = [n for n, f in models.items() if f == family]
    for word in prefer:
        for name in names:
            if word in name:
                return name
    return names[0] if names else None


def _chat_models(models: Mapping[str, str]) -> list[str]:
    return [n for n in models if "embedding" not in n]


def setup_for(client: str, base_url: str, models: Mapping[str, str], key: str | None) -> ClientSetup:
    """
    The configuration of C{client} (one of L{CLIENTS}) for the gateway at C{base_url} serving C{models}
    (name -> family: openai, claude, gemini).

    @raise ValueError: an unknown client, or a gateway serving no model the client can use.
    """
    base = base_url.rstrip("/")
    if client == "claude":
        return _claude(base, models, key)
    if client == "codex":
        return _codex(base, models, key)
    if client == "gemini":
        return _gemini(base, models, key)
    if client == "opencode":
        return _opencode(base, models, key)
    if client == "aider":
        return _aider(base, models, key)
    raise ValueError(f"unknown client {client!r}; expected one of {', '.join(CLIENTS)}")


def _key_note(key: str | None) -> tuple[str, ...]:
    if key is not None:
        return ()
    return (f"export {KEY_VARIABLE}=<your key>   # from: sapproxy-admin keys create --name <you>",)


def _claude(base: str, models: Mapping[str, str], key: str | None) -> ClientSetup:
    sonnet = _pick(models, "claude", ("sonnet",))
    if sonnet is None:
        raise ValueError("this gateway serves no Claude model, which Claude Code needs")
    env = {"ANTHROPIC_BASE_URL": base}
    settings: dict[str, object] = {"env": env}
    if key is not None:
        env["ANTHROPIC_AUTH_TOKEN"] = key
    else:
        # settings.json does not expand variables; the helper's output is sent as the key.
        settings["apiKeyHelper"] = f"printenv {KEY_VARIABLE}"
    env["ANTHROPIC_MODEL"] = sonnet
    for tier in ("opus", "sonnet", "haiku"):
        env[f"ANTHROPIC_DEFAULT_{tier.upper()}_MODEL"] = _pick(models, "claude", (tier, "sonnet")) or sonnet
    served = ", ".join(n for n, f in models.items() if f == "claude")
    return ClientSetup("claude", ".claude/settings.json", json.dumps(settings, indent=2) + "\n",
                       (*_key_note(key), "claude            # /model switches between: " + served),
                       "/v1/messages", merge_json=True)


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _codex(base: str, models: Mapping[str, str], key: str | None) -> ClientSetup:
    chat = _chat_models(models)
    if not chat:
        raise ValueError("this gateway serves no chat model")
    model = _pick(models, "openai", ("gpt-5", "gpt")) or chat[0]
    lines = [
        f"model = {_toml_string(model)}",
        'model_provider = "sapproxy"',
        "",
        "[model_providers.sapproxy]",
        'name = "SAP AI Core via sapproxy"',
        f"base_url = {_toml_string(base + '/v1')}",
        f"env_key = {_toml_string(KEY_VARIABLE)}",
        'wire_api = "responses"',
        "",
        "# Models this gateway serves: " + ", ".join(chat),
    ]
    notes = (*_key_note(key),) if key is None else (f"export {KEY_VARIABLE}={key}",)
    return ClientSetup("codex", ".codex/config.toml", "\n".join(lines) + "\n",
                       (*notes, "codex             # or: codex -m <model>, with any model listed in the file"),
                       "/v1/responses")


def _gemini(base: str, models: Mapping[str, str], key: str | None) -> ClientSetup:
    model = _pick(models, "gemini", ("pro",))
    if model is None:
        raise ValueError("this gateway serves no Gemini model, which Gemini CLI needs")
    lines = [
        f"GOOGLE_GEMINI_BASE_URL={base}",
        *([f"GEMINI_API_KEY={key}"] if key is not None else []),
        f"GEMINI_MODEL={model}",
        "# Models this gateway serves to Gemini CLI: " + ", ".join(n for n, f in models.items() if f == "gemini"),
    ]
    # The .env file is read as it is (no variable expansion): without --key, the key comes from the shell.
    notes = ("export GEMINI_API_KEY=<your key>   # from: sapproxy-admin keys create --name <you>",) if key is None else ()
    return ClientSetup("gemini", ".gemini/.env", "\n".join(lines) + "\n",
                       (*notes, "gemini            # choose 'Use Gemini API key' when it asks how to sign in"),
                       "/v1beta/models/{model}:streamGenerateContent")


def _opencode(base: str, models: Mapping[str, str], key: str | None) -> ClientSetup:
    api_key = key if key is not None else "{env:" + KEY_VARIABLE + "}"
    claude = [n for n, f in models.items() if f == "claude"]
    others = [n for n in _chat_models(models) if models[n] != "claude"]
    providers: dict[str, object] = {}
    if others:
        providers["sapproxy"] = {
            "npm": "@ai-sdk/openai-compatible",
            "name": "SAP AI Core (sapproxy)",
            "options": {"baseURL": base + "/v1", "apiKey": api_key},
            "models": {n: {"name": n} for n in others},
        }
    if claude:
        providers["sapproxy-claude"] = {
            "npm": "@ai-sdk/anthropic",
            "name": "SAP AI Core Claude (sapproxy)",
            "options": {"baseURL": base + "/v1", "apiKey": api_key},
            "models": {n: {"name": n} for n in claude},
        }
    if not providers:
        raise ValueError("this gateway serves no chat model")
    default = (f"sapproxy-claude/{_pick(models, 'claude', ('sonnet',))}" if claude
               else f"sapproxy/{others[0]}")
    config = {"$schema": "https://opencode.ai/config.json", "provider": providers, "model": default}
    return ClientSetup("opencode", ".config/opencode/opencode.json", json.dumps(config, indent=2) + "\n",
                       (*_key_note(key), "opencode          # /models lists the served models"),
                       "/v1/chat/completions", merge_json=True)


def _aider(base: str, models: Mapping[str, str], key: str | None) -> ClientSetup:
    chat = _chat_models(models)
    if not chat:
        raise ValueError("this gateway serves no chat model")
    main = _pick(models, "claude", ("sonnet",)) or _pick(models, "openai", ("gpt-5",)) or chat[0]
    weak = _pick(models, "claude", ("haiku",)) or _pick(models, "gemini", ("flash",)) or main
    lines = [
        f"openai-api-base: {base}/v1",
        *([f"openai-api-key: {json.dumps(key)}"] if key is not None else []),
        f"model: openai/{main}",
        f"weak-model: openai/{weak}",
        "alias:",
        *[f"  - {json.dumps(n.replace('--', '-') + ':openai/' + n)}" for n in chat],
    ]
    # The YAML is read as it is: without --key, aider takes the key from OPENAI_API_KEY.
    notes = ("export OPENAI_API_KEY=<your key>   # from: sapproxy-admin keys create --name <you>",) if key is None else ()
    return ClientSetup("aider", ".aider.conf.yml", "\n".join(lines) + "\n",
                       (*notes, "aider             # /model <alias> switches between the served models"),
                       "/v1/chat/completions")
