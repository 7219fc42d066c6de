"""
Import rules that keep the layers apart, read from the source (every C{import} statement of every module,
including the ones inside functions) rather than trusted to review.

Each rule names the modules it governs (a package: it and everything under it), the imports they must not
make (a module and everything under it, or with C{.*} only what is under it), the shared pieces it lets
through anyway, and the reason.  Adding a rule is one more row in L{RULES}.

A private name or module (one leading underscore, not a dunder) is visible inside the package that holds it,
sub-packages included, and nowhere else: L{test_no_private_name_crosses_a_package}.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
from conftest import ROOT

PACKAGE = ROOT / "sapproxy"


class Rule(NamedTuple):
    name: str
    #: modules governed: this package and everything under it
    importers: str
    #: imports refused: these modules and everything under them ("package.*": only what is under it)
    forbidden: tuple[str, ...]
    why: str
    #: imports let through although a pattern above matches them (shared pieces, not concrete ones)
    allowed: tuple[str, ...] = ()

    def refuses(self, module: str) -> bool:
        if any(_within(module, allowed) for allowed in self.allowed):
            return False
        return any(module.startswith(pattern[:-1]) if pattern.endswith(".*") else _within(module, pattern)
                   for pattern in self.forbidden)


RULES = [
    Rule("translate is pure", "sapproxy.translate", ("twisted", "treq", "klein"),
         "converters and stream state machines are plain functions of JSON: testable and fast without a reactor"),
    Rule("surfaces never reach providers or wire formats", "sapproxy.surfaces",
         ("sapproxy.upstreams", "sapproxy.translate.wire"),
         "a client API knows its own dialect and the IR; which upstream serves it is dispatch's business"),
    Rule("providers never reach surfaces or client formats", "sapproxy.upstreams",
         ("sapproxy.surfaces", "sapproxy.translate.client"),
         "a provider knows its upstream and wire format, never which client dialect asked"),
    Rule("dispatch sees only the seams", "sapproxy.dispatch",
         ("sapproxy.surfaces", "sapproxy.translate.client", "sapproxy.translate.wire.*", "sapproxy.upstreams.*"),
         "dispatch joins client APIs, wire formats and providers through sapproxy.interfaces; which ones exist is "
         "sapproxy.registry's business", allowed=("sapproxy.upstreams.http",)),
]


class Import(NamedTuple):
    importer: str  # the importing module
    module: str  # the module imported (for "from m import n": m, or m.n when that is a module)
    name: str | None  # for "from m import n" where n is not a module: n
    line: int


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _package_of(module: str) -> str:
    """The package a module belongs to (a package's C{__init__} belongs to the package itself)."""
    return module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]


def _resolve(importer: str, level: int, module: str | None) -> str:
    base = _package_of(importer)
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return ".".join(part for part in (base, module) if part)


def imports_of(module: str) -> Iterator[Import]:
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, None, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node.level, node.module) if node.level else (node.module or "")
            for alias in node.names:
                child = f"{source}.{alias.name}"
                if child in MODULES:
                    yield Import(module, child, None, node.lineno)
                else:
                    yield Import(module, source, alias.name, node.lineno)


def private_reaches(module: str) -> Iterator[tuple[str, int]]:
    """
    Private names and modules of sapproxy that C{module} reaches from outside the package holding them:
    imported (C{from m import _x}, C{import m._x}) or read off an imported module (C{m._x}).
    """
    aliases: dict[str, str] = {}  # a local name bound to a sapproxy module -> that module
    for imp in imports_of(module):
        if not imp.module.startswith("sapproxy"):
            continue
        parts = imp.module.split(".")
        for i, part in enumerate(parts):
            if _private(part):
                holder = ".".join(parts[:i])  # the package that holds the private module
                if not _within(module, holder):
                    yield f"module {'.'.join(parts[: i + 1])}", imp.line
                break
        if imp.name is not None and _private(imp.name) and not _within(module, _package_of(imp.module)):
            yield f"{imp.module}.{imp.name}", imp.line
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            source = _resolve(module, node.level, node.module) if node.level else node.module
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in MODULES:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = aliases.get(node.value.id)
            if target is not None and not _within(module, _package_of(target)):
                yield f"{target}.{node.attr}", node.lineno


def violations(rule: Rule) -> list[str]:
    """Each forbidden import of a governed module, once per line."""
    found: dict[str, None] = {}
    for module in MODULES:
        if not _within(module, rule.importers):
            continue
        for imp in imports_of(module):
            if rule.refuses(imp.module):
                found[f"{MODULES[module].relative_to(ROOT)}:{imp.line} imports {imp.module}"] = None
    return list(found)


# ---------------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule(rule: Rule) -> None:
    assert _any_module_under(rule.importers), f"{rule.importers} governs no module: the rule is stale"
    assert violations(rule) == [], f"{rule.name}: {rule.why}"


def test_no_private_name_crosses_a_package() -> None:
    found = [f"{MODULES[m].relative_to(ROOT)}:{line} reaches {what}" for m in MODULES for what, line in private_reaches(m)]
    assert found == []


def test_importing_translate_loads_no_twisted() -> None:
    """
    The static rule sees direct imports; this sees the whole graph (a helper that imports Twisted, a
    third-party package that does): import every translate module in a fresh interpreter.
    """
    modules = sorted(m for m in MODULES if _within(m, "sapproxy.translate"))
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'treq', 'klein')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert len(modules) > 10


def _any_module_under(package: str) -> bool:
    return any(_within(m, package) for m in MODULES)


# ---------------------------------------------------------------------------------------------- the reader


def _scan(tmp: Path, source: str, module: str = "sapproxy.surfaces.example") -> tuple[list[Import], list[tuple[str, int]]]:
    """What the reader finds in C{source}, as if it were C{module}."""
    path = tmp / "example.py"
    path.write_text(source)
    MODULES[module] = path
    try:
        return list(imports_of(module)), list(private_reaches(module))
    finally:
        del MODULES[module]


def test_the_reader_sees_every_form(tmp_path: Path) -> None:
    imports, _ = _scan(
        tmp_path,
        "import twisted.internet.reactor\n"
        "from sapproxy.translate.wire import gemini\n"
        "from ..upstreams.http import UpstreamClient\n"
        "def later():\n"
        "    from klein import Klein\n"
    )
    assert [(i.module, i.name) for i in imports] == [
        ("twisted.internet.reactor", None),
        ("sapproxy.translate.wire.gemini", None),
        ("sapproxy.upstreams.http", "UpstreamClient"),
        ("klein", "Klein"),
    ]
    assert [i.module for i in imports if RULES[1].refuses(i.module)] == ["sapproxy.translate.wire.gemini",
                                                                          "sapproxy.upstreams.http"]
    assert [i.module for i in imports if RULES[0].refuses(i.module)] == ["twisted.internet.reactor", "klein"]


def test_patterns_and_exceptions() -> None:
    dispatch = next(rule for rule in RULES if rule.importers == "sapproxy.dispatch")
    assert not dispatch.refuses("sapproxy.translate.wire")  # the package: WireRequest, WireTarget
    assert dispatch.refuses("sapproxy.translate.wire.gemini.stream")
    assert not dispatch.refuses("sapproxy.upstreams.http")  # the pool, shared by every provider
    assert dispatch.refuses("sapproxy.upstreams.sap_aicore")
    assert not dispatch.refuses("sapproxy.translate.wireless")


def test_the_reader_sees_private_reaches(tmp_path: Path) -> None:
    _, reaches = _scan(
        tmp_path,
        "from sapproxy.translate.framing.sse import _private_thing, json_text, __all__\n"
        "from sapproxy.dispatch import plan\n"
        "import sapproxy.translate.framing.sse as sse\n"
        "plan._helper(sse._x, plan.public)\n"
        "from sapproxy.surfaces._shared import thing\n"  # a private module of its own package: fine
        "from sapproxy.web._scaffold import frame\n"
    )
    assert sorted(what for what, _ in reaches) == [
        "module sapproxy.web._scaffold",
        "sapproxy.dispatch.plan._helper",
        "sapproxy.translate.framing.sse._private_thing",
        "sapproxy.translate.framing.sse._x",
    ]
