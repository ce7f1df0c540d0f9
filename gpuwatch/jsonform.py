"""The JSON form of the data model: encoding, decoding, and the documented schema.

Place in the flow: data model ↔ **JSON** ↔ faces. One codec for every face: `gpuwatch snapshot
--json`, the daemon's JSON API and the TUI's HTTP client all go through it, so a snapshot read
from a remote daemon is the same `Snapshot` the engine built. Encoding follows the dataclass
field order; decoding is driven by the type hints and rejects what does not fit with
`DecodeError`, naming the path to the bad value.

The JSON Schema of the snapshot document is derived here from the same data model and its
docstrings (the strings written under each field in gpuwatch/model.py). `docs/snapshot.schema.json`
is its output, committed as the documented contract of `gpuwatch snapshot --json` and
`/api/v1/snapshot`; a test regenerates it and validates real output against the committed file.
Regenerate with `python -m gpuwatch.jsonform > docs/snapshot.schema.json`; the field tables of
docs/snapshot.md come from `python -m gpuwatch.jsonform --markdown`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import sys
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeGuard, TypeVar, Union, get_args, get_origin, get_type_hints

from gpuwatch import model, series

T = TypeVar("T")

JsonValue = Any  # str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]


class DecodeError(ValueError):
    """A JSON document does not have the shape of the data model."""


def encode(value: Any) -> JsonValue:
    """A dataclass tree → dicts, lists and scalars. Dict keys become strings (JSON's rule)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in _fields(type(value))}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):  # NaN is not JSON
        return None
    return value


def encode_snapshot(snapshot: model.Snapshot) -> dict[str, JsonValue]:
    """The documented JSON form of a snapshot (docs/snapshot.schema.json)."""
    doc: dict[str, JsonValue] = {"schema_version": model.SCHEMA_VERSION}
    doc.update(encode(snapshot))
    return doc


def decode_snapshot(doc: JsonValue) -> model.Snapshot:
    if not isinstance(doc, dict):
        raise DecodeError("snapshot: expected a JSON object")
    version = doc.get("schema_version")
    if version != model.SCHEMA_VERSION:
        raise DecodeError(
            f"snapshot: schema_version {version!r} is not {model.SCHEMA_VERSION}; "
            "the daemon and this client are different gpuwatch versions"
        )
    body = {k: v for k, v in doc.items() if k != "schema_version"}
    return decode(model.Snapshot, body)


def encode_history(
    name: str,
    match: dict[str, str],
    *,
    start: float,
    end: float,
    points: int,
    results: list[series.SeriesData],
) -> dict[str, JsonValue]:
    """The one JSON form of a history answer: `/api/v1/history` and `gpuwatch query --json`.

    Each result's points are `[timestamp, mean, minimum, maximum]` arrays (compact, as a
    range of 10 000 points would otherwise repeat four keys 10 000 times)."""
    return {
        "series": name,
        "match": dict(match),
        "from": start,
        "to": end,
        "points": points,
        "result": [
            {
                "labels": dict(data.key.labels),
                "resolution_seconds": data.resolution_seconds,
                "points": [
                    [_finite(p.timestamp), _finite(p.mean), _finite(p.minimum), _finite(p.maximum)]
                    for p in data.points
                ],
            }
            for data in results
        ],
    }


def decode_history(doc: JsonValue) -> list[series.SeriesData]:
    """The inverse of `encode_history` (what a client of the API reads)."""
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("result"), list)
        or not isinstance(doc.get("series"), str)
    ):
        raise DecodeError("history: expected an object with series and result")
    out = []
    for i, item in enumerate(doc["result"]):
        where = f"$.result[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise DecodeError(f"{where}: expected an object with labels")
        points = []
        for j, row in enumerate(item.get("points", [])):
            if not (isinstance(row, list) and len(row) == 4 and all(v is None or _is_number(v) for v in row)):
                raise DecodeError(f"{where}.points[{j}]: expected [timestamp, mean, minimum, maximum]")
            ts, mean, low, high = row
            if ts is None or mean is None:
                continue  # a value JSON cannot carry (NaN, ±inf) was encoded as null: a gap, never a 0
            points.append(
                series.Point(
                    float(ts),
                    float(mean),
                    float(mean if low is None else low),
                    float(mean if high is None else high),
                )
            )
        resolution = item.get("resolution_seconds")
        if not _is_number(resolution) or not math.isfinite(resolution) or resolution <= 0:
            raise DecodeError(f"{where}.resolution_seconds: expected a positive number")
        labels = tuple((str(k), str(v)) for k, v in item["labels"].items())
        out.append(
            series.SeriesData(series.SeriesKey(doc["series"], labels), float(resolution), tuple(points))
        )
    return out


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def encode_events(start: float, end: float, events: list[model.Event]) -> dict[str, JsonValue]:
    """The one JSON form of an events answer: `/api/v1/events` and `gpuwatch events --json`."""
    return {"from": start, "to": end, "events": [encode(e) for e in events]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def decode(cls: type[T], data: JsonValue, path: str = "$") -> T:
    """Decode `data` as `cls`. Unknown keys are ignored (a newer daemon may add fields)."""
    return typing.cast(T, _decode(cls, data, path))


@cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, vars(model))


def _decode(tp: Any, data: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if data is None:
            if type(None) in args:
                return None
            raise DecodeError(f"{path}: null is not allowed here")
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _decode(arg, data, path)
            except DecodeError as exc:
                errors.append(str(exc))
        raise DecodeError(errors[0] if len(errors) == 1 else f"{path}: {data!r} fits no variant")
    if origin is tuple:
        if not isinstance(data, list):
            raise DecodeError(f"{path}: expected a list")
        (item,) = [a for a in get_args(tp) if a is not Ellipsis]
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            raise DecodeError(f"{path}: expected an object")
        key_tp, val_tp = get_args(tp)
        out = {}
        for k, v in data.items():
            try:
                key = key_tp(k)
            except ValueError:
                raise DecodeError(f"{path}: key {k!r} is not {key_tp.__name__}") from None
            out[key] = _decode(val_tp, v, f"{path}.{k}")
        return out
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise DecodeError(f"{path}: expected an object for {tp.__name__}")
        hints = _hints(tp)
        kwargs = {}
        for f in _fields(tp):
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"{path}: missing {f.name!r}")
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise DecodeError(f"{path}: {data!r} is not a {tp.__name__}") from None
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise DecodeError(f"{path}: expected a number, got {data!r}")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise DecodeError(f"{path}: expected an integer, got {data!r}")
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise DecodeError(f"{path}: expected true or false, got {data!r}")
        return data
    if tp is str:
        if not isinstance(data, str):
            raise DecodeError(f"{path}: expected a string, got {data!r}")
        return data
    raise TypeError(f"codec cannot decode type {tp!r} at {path}")


# --------------------------------------------------------------------------- the schema


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
