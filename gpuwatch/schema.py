"""JSON Schema of the snapshot document, derived from the data model and its docstrings.

`docs/snapshot.schema.json` is this module's output, committed as the documented contract of
`gpuwatch snapshot --json` and of `/api/v1/snapshot`. A test regenerates it (the doc must be
current) and validates real output against the committed file (the encoder must keep to it).
Field descriptions are the docstrings written under each field in gpuwatch/model.py.

Regenerate with: `python -m gpuwatch.schema > docs/snapshot.schema.json`; the field tables of
docs/snapshot.md come from `python -m gpuwatch.schema --markdown`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sys
import types
from enum import Enum
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from gpuwatch import model


@cache
def _field_docs() -> dict[tuple[str, str], str]:
    """(class name, field name) → the string literal written right under the field."""
    tree = ast.parse(inspect.getsource(model))
    docs: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for i, stmt in enumerate(body[:-1]):
            nxt = body[i + 1]
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[(node.name, stmt.target.id)] = " ".join(nxt.value.value.split())
    return docs


def _class_doc(cls: type) -> str:
    return " ".join((inspect.getdoc(cls) or "").split())


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        options = [_type_schema(a, defs) for a in args if a is not type(None)]
        if type(None) in args:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is tuple:
        (item,) = [a for a in get_args(tp) if a is not Ellipsis]
        return {"type": "array", "items": _type_schema(item, defs)}
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        schema: dict[str, Any] = {"type": "object", "additionalProperties": _type_schema(val_tp, defs)}
        if key_tp is int:
            schema["propertyNames"] = {"pattern": "^-?[0-9]+$"}
        return schema
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        _define(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON schema for {tp!r}")


def _define(cls: type, defs: dict[str, Any]) -> None:
    if cls.__name__ in defs:
        return
    defs[cls.__name__] = {}  # reserve the name first (recursive types)
    hints = get_type_hints(cls, vars(model))
    docs = _field_docs()
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        prop = _type_schema(hints[f.name], defs)
        doc = docs.get((cls.__name__, f.name))
        if doc:
            prop = {**prop, "description": doc}
        properties[f.name] = prop
    defs[cls.__name__] = {
        "type": "object",
        "description": _class_doc(cls),
        "properties": properties,
        "required": [f.name for f in dataclasses.fields(cls)],
        "additionalProperties": False,
    }


def snapshot_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    _define(model.Snapshot, defs)
    root = dict(defs["Snapshot"])
    root["properties"] = {
        "schema_version": {
            "const": model.SCHEMA_VERSION,
            "description": "Version of this document's layout; bumped on any incompatible change.",
        },
        **root["properties"],
    }
    root["required"] = ["schema_version", *root["required"]]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/gpuwatch/gpuwatch/docs/snapshot.schema.json",
        "title": "gpuwatch snapshot",
        **root,
        "$defs": {k: v for k, v in sorted(defs.items()) if k != "Snapshot"},
    }


def _type_words(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type_words(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(f"`{v}`" for v in prop["enum"])
    if prop.get("type") == "array":
        return f"list of {_type_words(prop['items'])}"
    if prop.get("type") == "object":
        return f"object of {_type_words(prop['additionalProperties'])}"
    if "const" in prop:
        return f"`{prop['const']}`"
    return str(prop.get("type"))


def markdown_tables() -> str:
    """One table per object of the snapshot document, for docs/snapshot.md."""
    schema = snapshot_schema()
    objects = {"Snapshot": schema, **schema["$defs"]}
    out = []
    for name, obj in objects.items():
        out.append(f"### {name}\n")
        if obj.get("description"):
            out.append(obj["description"] + "\n")
        out.append("| field | type | meaning |\n| --- | --- | --- |")
        for field_name, prop in obj["properties"].items():
            meaning = prop.get("description", "").replace("|", "\\|")
            out.append(f"| `{field_name}` | {_type_words(prop)} | {meaning} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(markdown_tables())
        return 0
    json.dump(snapshot_schema(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
