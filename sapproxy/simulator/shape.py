"""
A small JSON type checker: every provider rejects a body whose fields have the wrong JSON type before it
looks at their values, each with its own wording. The specs here describe the fields the simulator reads
so that handlers can trust the types they see.

Spec language: a Python type (C{str}, C{int}, C{bool}, C{dict}, C{list}), L{NUMBER}, L{ANY}, C{None}
(JSON null), a dict (an object with these optional typed keys; other keys are not checked here), a
one-element list (an array of that spec), or a tuple (any of these specs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

NUMBER = "number"
ANY = "any"


def _type_name(spec: Any) -> str:
    if spec is None:
        return "null"
    if spec is NUMBER:
        return "number"
    if spec is ANY:
        return "any"
    if isinstance(spec, tuple):
        return " or ".join(_type_name(s) for s in spec)
    if isinstance(spec, dict) or spec is dict:
        return "object"
    if isinstance(spec, list) or spec is list:
        return "array"
    return {str: "string", int: "integer", bool: "boolean"}.get(spec, str(spec))


def check(value: Any, spec: Any, path: str = "") -> tuple[str, str] | None:
    """The first mismatch as (path, expected type name), or None when C{value} fits C{spec}."""
    if spec is ANY:
        return None
    if isinstance(spec, tuple):
        for option in spec:
            if check(value, option, path) is None:
                return None
        # Report the deepest mismatch of the option whose outer type matches, else the union.
        for option in spec:
            if _outer_ok(value, option):
                return check(value, option, path)
        return path, _type_name(spec)
    if not _outer_ok(value, spec):
        return path, _type_name(spec)
    if isinstance(spec, dict):
        for key, sub in spec.items():
            if key in value:
                found = check(value[key], sub, f"{path}.{key}" if path else key)
                if found:
                    return found
    elif isinstance(spec, list):
        for i, item in enumerate(value):
            found = check(item, spec[0], f"{path}[{i}]")
            if found:
                return found
    return None


def _outer_ok(value: Any, spec: Any) -> bool:
    if spec is ANY:
        return True
    if spec is None:
        return value is None
    if spec is NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec is bool:
        return isinstance(value, bool)
    if spec is str:
        return isinstance(value, str)
    if isinstance(spec, dict) or spec is dict:
        return isinstance(value, Mapping)
    if isinstance(spec, list) or spec is list:
        return isinstance(value, list)
    if isinstance(spec, tuple):
        return any(_outer_ok(value, s) for s in spec)
    return False


def with_snake_case(spec: Any) -> Any:
    """The same spec also accepting snake_case spellings of camelCase keys (Google's JSON parser does)."""
    if isinstance(spec, dict):
        out: dict[str, Any] = {}
        for key, sub in spec.items():
            converted = with_snake_case(sub)
            out[key] = converted
            out[re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)] = converted
        return out
    if isinstance(spec, list):
        return [with_snake_case(spec[0])]
    if isinstance(spec, tuple):
        return tuple(with_snake_case(s) for s in spec)
    return spec
