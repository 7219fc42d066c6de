"""
JSON Schema to the OpenAPI subset Gemini accepts for function parameters and structured output.
"""

from __future__ import annotations

import json
from typing import Any

#: Schema keywords Gemini accepts (Vertex C{Schema}); everything else is dropped.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "properties",
        "required",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
        "default",
        "example",
    }
)
_FORMATS = {
    "string": {"enum", "date-time"},
    "integer": {"int32", "int64"},
    "number": {"float", "double"},
}
_MAX_DEPTH = 32


def _resolve_ref(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for piece in ref[2:].split("/"):
        piece = piece.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or piece not in node:
            return None
        node = node[piece]
    return node


def clean_schema(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """
    A JSON schema reduced to what Gemini's C{Schema} accepts: local C{$ref}s inlined (to a bounded depth),
    C{type: [x, "null"]} -> C{type: x, nullable: true}, C{const} -> C{enum}, C{oneOf} -> C{anyOf}, a lone
    C{allOf} merged, non-string enum values stringified, unsupported keywords and formats dropped,
    C{required} limited to declared properties.
    """
    if not isinstance(schema, dict):
        return {}
    if root is None:
        root = schema
    if depth > _MAX_DEPTH:
        return {"type": "object"}
    if "$ref" in schema and isinstance(schema["$ref"], str):
        target = _resolve_ref(schema["$ref"], root)
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        if isinstance(target, dict):
            return clean_schema({**target, **extra}, root, depth + 1)
        return clean_schema(extra or {"type": "object"}, root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        props = dict(merged["properties"]) if isinstance(merged.get("properties"), dict) else {}
        required = list(merged["required"]) if isinstance(merged.get("required"), list) else []
        for part in schema["allOf"]:
            if isinstance(part, dict):
                part = clean_schema(part, root, depth + 1)
                props.update(part.get("properties") or {})
                required.extend(part.get("required") or [])
                for key, value in part.items():
                    merged.setdefault(key, value)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        schema = merged
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        if "null" in kinds:
            out["nullable"] = True
            kinds = [k for k in kinds if k != "null"]
        if len(kinds) == 1:
            kind = kinds[0]
        elif kinds:
            out["anyOf"] = [{"type": k} for k in kinds]
            kind = None
        else:
            kind = None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind
    elif kind == "null":
        out["nullable"] = True
    for key, value in schema.items():
        if key in ("type", "$ref", "allOf") or key not in _SCHEMA_KEYS and key not in ("const", "oneOf"):
            continue
        if key == "properties":
            if isinstance(value, dict):
                out["properties"] = {
                    str(name): clean_schema(sub, root, depth + 1) for name, sub in value.items()
                }
        elif key == "items":
            if isinstance(value, dict):
                out["items"] = clean_schema(value, root, depth + 1)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                out["items"] = clean_schema(value[0], root, depth + 1)
        elif key in ("anyOf", "oneOf"):
            if isinstance(value, list):
                options = [clean_schema(sub, root, depth + 1) for sub in value if isinstance(sub, dict)]
                non_null = [o for o in options if o != {} and o.get("type") != "null"]
                if len(non_null) < len(options):
                    out["nullable"] = True
                if len(non_null) == 1 and "type" not in out:
                    out.update({k: v for k, v in non_null[0].items() if k not in out})
                elif non_null:
                    out["anyOf"] = non_null
        elif key == "const":
            out["enum"] = [value if isinstance(value, str) else json.dumps(value)]
            out.setdefault("type", "string")
        elif key == "enum":
            if isinstance(value, list):
                values = [v for v in value if v is not None]
                if len(values) < len(value):
                    out["nullable"] = True
                out["enum"] = [v if isinstance(v, str) else json.dumps(v) for v in values]
                out["type"] = "string"
        elif key == "format":
            allowed = _FORMATS.get(str(out.get("type") or ""), set())
            if isinstance(value, str) and value in allowed:
                out["format"] = value
        elif key == "required":
            if isinstance(value, list):
                out["required"] = [v for v in value if isinstance(v, str)]
        elif key in ("description", "title", "pattern"):
            if isinstance(value, str):
                out[key] = value
        elif key == "nullable":
            if value is True:
                out["nullable"] = True
        else:
            out[key] = value
    if "type" not in out and "anyOf" not in out:
        if "properties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
    if "required" in out:
        props = out.get("properties") or {}
        out["required"] = [name for name in out["required"] if name in props]
        if not out["required"]:
            del out["required"]
    if out.get("type") == "object" and not out.get("properties"):
        out.pop("properties", None)
        out.pop("required", None)
    if "anyOf" in out and "type" in out:
        del out["anyOf"]
    return out
