"""
From the model name a client sends to the configured model that serves it.

Clients send names that are not SAP's: Claude Code asks for C{claude-sonnet-4-5-20250929} or
C{claude-opus-4-8[1m]}, the openai SDK's users for C{gpt-4.1-2025-04-14}.  An exact configured name wins,
then an explicit alias from the config; then a Claude name resolves to the configured Claude model of the
same tier (opus, sonnet, haiku) with the same version, else the newest of that tier; a dated GPT or Gemini
name to the configured name it starts with.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from attrs import frozen
from twisted.logger import Logger

from sapproxy.config import ModelSettings
from sapproxy.edge import printable

log = Logger()

_TIERS = ("opus", "sonnet", "haiku")
_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest|preview(-\d\d-\d\d)?)$")


def family_of(name: str, settings: ModelSettings | None = None) -> str:
    """
    The family of a configured model, as the original proxy decided it when the config does not say.
    """
    if settings is not None and settings.family:
        return settings.family
    lower = name.lower()
    if any(word in lower for word in ("claude", "sonnet", "opus", "haiku")):
        return "claude"
    if "gemini" in lower:
        return "gemini"
    return "openai"


@frozen
class ResolvedModel:
    requested: str
    name: str
    family: str
    how: str


def _tier(name: str) -> str | None:
    lower = name.lower()
    return next((t for t in _TIERS if t in lower), None)


def _version(name: str) -> tuple[int, ...]:
    """
    The version numbers in a Claude name, wherever they stand: C{anthropic--claude-4.5-sonnet} and
    C{claude-sonnet-4-5-20250929} are both 4.5; dates and context tags are not versions.
    """
    cleaned = re.sub(r"\[[^\]]*\]", "", name.lower())
    cleaned = re.sub(r"\d{8}", "", cleaned)
    return tuple(int(n) for n in re.findall(r"\d+", cleaned))


class ModelCatalog:
    def __init__(self, configured: Iterable[str], settings: Mapping[str, ModelSettings],
                 aliases: Mapping[str, str], *, strict: bool = False) -> None:
        """
        @param strict: refuse names that only another generation of the model would serve
            (C{strict_model_names}), instead of serving them with a warning.
        """
        self._configured = sorted(set(configured))
        self._settings = settings
        self._aliases = aliases
        self._strict = strict
        self._cache: dict[str, ResolvedModel | None] = {}

    def update(self, configured: Iterable[str]) -> None:
        """
        The served names changed (discovery found or lost a model): resolve every name afresh.
        """
        names = sorted(set(configured))
        if names != self._configured:
            self._configured = names
            self._cache = {}

    def other_generation(self) -> dict[str, str]:
        """
        Client names served by another generation of their model (for C{/v1/models} and C{/health}).
        """
        return {name: hit.name for name, hit in self._cache.items() if hit is not None and _other_generation(hit)}

    @property
    def names(self) -> list[str]:
        return list(self._configured)

    def recent(self) -> dict[str, str | None]:
        """
        Names clients sent that were not configured names, and what each resolved to (for /health).
        """
        return {name: (hit.name if hit else None) for name, hit in self._cache.items() if name not in self._configured}

    def family(self, name: str) -> str:
        return family_of(name, self._settings.get(name))

    def resolve(self, requested: str) -> ResolvedModel | None:
        try:
            return self._cache[requested]
        except KeyError:
            pass
        found = self._resolve(requested)
        if found is not None and self._strict and _other_generation(found):
            log.warn("model name {requested} refused: only {name} (another generation) serves it and "
                     "strict_model_names is on", requested=printable(requested), name=found.name)
            found = None
        if len(self._cache) < 10_000:
            self._cache[requested] = found
            if found is not None and _other_generation(found):
                log.warn("model name {requested} is served by {name}, another generation ({how}); add an alias or "
                         "set strict_model_names to refuse it", requested=printable(requested), name=found.name,
                         how=found.how)
            elif found is not None and found.how != "exact":
                log.info("model name {requested} resolves to {name} ({how})", requested=printable(requested),
                         name=found.name, how=found.how)
        return found

    def _resolve(self, requested: str) -> ResolvedModel | None:
        if requested in self._configured:
            return ResolvedModel(requested, requested, self.family(requested), "exact")
        if requested in self._aliases:
            target = self._aliases[requested]
            return ResolvedModel(requested, target, self.family(target), "alias")
        base = re.sub(r"\[[^\]]*\]$", "", requested)
        if family_of(base) == "claude":
            return self._claude(requested, base)
        stripped = base
        while True:
            if stripped in self._configured:
                return ResolvedModel(requested, stripped, self.family(stripped), "dated name")
            shorter = _DATE_SUFFIX.sub("", stripped)
            if shorter == stripped:
                return None
            stripped = shorter

    def _claude(self, requested: str, base: str) -> ResolvedModel | None:
        tier = _tier(base)
        if tier is None:
            return None
        same_tier = [m for m in self._configured if self.family(m) == "claude" and _tier(m) == tier]
        if not same_tier:
            return None
        wanted = _version(base)
        exact = [m for m in same_tier if _version(m) == wanted]
        pick = exact[0] if exact else max(same_tier, key=_version)
        return ResolvedModel(requested, pick, "claude", "same version" if exact else f"newest {tier}")


def _other_generation(hit: ResolvedModel) -> bool:
    """
    Whether a Claude name resolved to a model of its tier with another version (C{claude-opus-4-8} served by
    an Opus 4.1): the client gets a different generation from the one it asked for.
    """
    return hit.how.startswith("newest ") and _version(re.sub(r"\[[^\]]*\]$", "", hit.requested)) != _version(hit.name)
