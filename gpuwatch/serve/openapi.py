"""The OpenAPI 3.1 description of /metrics and the JSON API, served at /api/v1/openapi.json.

Place in the flow: data only; `gpuwatch.serve.api` serves it. Tests validate it with
openapi-spec-validator, check that every served path is described here, and validate real
responses against these schemas while throwing generated parameters at a real server.
"""

from __future__ import annotations

import copy
from typing import Any

from gpuwatch import __version__, model, series

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_NUM = {"type": ["number", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}

_TIME_PARAM_DOC = (
    "Unix seconds (`1767225600`, `1767225600.5`), `now`, a time before now with or without a minus "
    "(`-90s` and `90s` are both 90 seconds ago; units s, m, h, d, w, y), or an ISO 8601 date and time "
    "(`2026-11-24T03:12Z`; without a zone, the daemon's local time): the grammar of the CLI's "
    "`--since` and `--until`."
)


def _param(name: str, doc: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": doc, "schema": schema}


def _json(schema_ref: str, doc: str) -> dict[str, Any]:
    return {
        "description": doc,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


_ERRORS = {
    "400": _json("Error", "A parameter is malformed, unknown or repeated; `error` says which."),
    "401": _json("Error", "Authentication is configured and the request did not pass it."),
    "503": _json("Error", "Too many connections, or the data asked for is not available yet."),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {
            "error": {"type": "string", "description": "What was wrong, for people; the wording may change."},
            "status": {"type": "integer"},
            "code": {
                "type": "string",
                "enum": ["not_ready", "unknown_series"],
                "description": "Present where a client acts on the error: `not_ready` is /snapshot's "
                "503 before the daemon's first tick (wait and ask again); `unknown_series` is "
                "/history's 400 for a series name the daemon does not have (see /series).",
            },
        },
    },
    "Snapshot": {
        "type": "object",
        "description": "Everything gpuwatch knows at one tick: the JSON form of gpuwatch.model.Snapshot "
        "(docs/snapshot.md).",
        "required": ["schema_version", "timestamp", "node", "devices", "gpus", "processes", "triton"],
        "properties": {
            "schema_version": {"type": "integer", "const": model.SCHEMA_VERSION},
            "timestamp": {"type": "number"},
            "node": {"type": "object", "required": ["hostname", "gpuwatch_version", "source"]},
            "devices": {"type": "array", "items": {"type": "object", "required": ["index", "uuid"]}},
            "gpus": {"type": "array", "items": {"type": "object", "required": ["index", "uuid", "state"]}},
            "processes": {"type": "array", "items": {"type": "object", "required": ["pid", "gpu_index"]}},
            "triton": {"type": "array", "items": {"type": "object", "required": ["name", "state", "models"]}},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "collectors": {"type": "array", "items": {"$ref": "#/components/schemas/CollectorHealth"}},
            "store": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/StoreHealth"}]},
            "nvml_status": _NULLABLE_STR,
            "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
        },
    },
    "Finding": {
        "type": "object",
        "description": "One thing that needs a look (docs/findings.md).",
        "required": ["kind", "severity", "subject", "since", "words", "message", "evidence", "advice"],
        "properties": {
            "kind": {"type": "string", "enum": [k.value for k in model.FindingKind]},
            "severity": {"type": "string", "enum": [s.value for s in model.Severity]},
            "subject": {
                "type": "object",
                "required": ["kind"],
                "properties": {
                    "kind": {"type": "string", "enum": [k.value for k in model.SubjectKind]},
                    "gpu_index": _NULLABLE_INT,
                    "server": _NULLABLE_STR,
                    "model": _NULLABLE_STR,
                    "version": _NULLABLE_STR,
                    "collector": _NULLABLE_STR,
                },
            },
            "since": {"type": "number"},
            "words": {"type": "string"},
            "message": {"type": "string"},
            "evidence": {"type": "object", "additionalProperties": {"type": "number"}},
            "advice": _NULLABLE_STR,
        },
    },
    "Findings": {
        "type": "object",
        "required": ["timestamp", "findings"],
        "properties": {
            "timestamp": {"type": "number", "description": "The tick the findings belong to."},
            "findings": {
                "type": "array",
                "description": "Most severe first, then oldest first.",
                "items": {"$ref": "#/components/schemas/Finding"},
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["timestamp", "kind", "severity", "message"],
        "properties": {
            "timestamp": {"type": "number"},
            "kind": {"type": "string", "enum": [k.value for k in model.EventKind]},
            "severity": {"type": "string", "enum": [s.value for s in model.Severity]},
            "message": {"type": "string"},
            "gpu_index": _NULLABLE_INT,
            "gpu_uuid": _NULLABLE_STR,
            "server": _NULLABLE_STR,
            "model": _NULLABLE_STR,
            "version": _NULLABLE_STR,
            "code": _NULLABLE_INT,
        },
    },
    "Events": {
        "type": "object",
        "required": ["from", "to", "events"],
        "properties": {
            "from": {"type": "number"},
            "to": {"type": "number"},
            "events": {
                "type": "array",
                "description": "Newest first.",
                "items": {"$ref": "#/components/schemas/Event"},
            },
        },
    },
    "History": {
        "type": "object",
        "required": ["series", "match", "from", "to", "points", "result"],
        "properties": {
            "series": {"type": "string"},
            "match": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The label filters the answer was selected by.",
            },
            "from": {"type": "number"},
            "to": {"type": "number"},
            "points": {"type": "integer", "minimum": 1},
            "result": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["labels", "resolution_seconds", "points"],
                    "properties": {
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "resolution_seconds": {
                            "type": "number",
                            "description": "Width of each bucket: 1 for raw seconds, 60 for minutes, …",
                        },
                        "points": {
                            "type": "array",
                            "description": "[timestamp, mean, min, max] per bucket, oldest first.",
                            "items": {
                                "type": "array",
                                "minItems": 4,
                                "maxItems": 4,
                                "items": _NULLABLE_NUM,
                            },
                        },
                    },
                },
            },
        },
    },
    "CollectorHealth": {
        "type": "object",
        "required": ["name", "ok", "stale", "cadence_seconds"],
        "properties": {
            "name": {"type": "string"},
            "ok": {"type": "boolean"},
            "stale": {"type": "boolean"},
            "cadence_seconds": {"type": "number"},
            "last_success_at": _NULLABLE_NUM,
            "last_duration_seconds": _NULLABLE_NUM,
            "last_error": _NULLABLE_STR,
            "runs_count": {"type": "integer"},
            "errors_count": {"type": "integer"},
        },
    },
    "StoreHealth": {
        "type": "object",
        "required": ["ok"],
        "properties": {
            "ok": {"type": "boolean"},
            "path": _NULLABLE_STR,
            "last_error": _NULLABLE_STR,
            "write_errors_count": {"type": "integer"},
            "queue_length": {"type": "integer"},
            "size_bytes": _NULLABLE_INT,
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "problems", "nvml", "collectors", "store"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "starting"]},
            "problems": {"type": "array", "items": {"type": "string"}},
            "snapshot_timestamp": _NULLABLE_NUM,
            "snapshot_age_seconds": _NULLABLE_NUM,
            "nvml": {
                "type": "object",
                "required": ["up", "status"],
                "properties": {"up": {"type": "boolean"}, "status": _NULLABLE_STR},
            },
            "collectors": {"type": "array", "items": {"$ref": "#/components/schemas/CollectorHealth"}},
            "store": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/StoreHealth"}]},
            "node": {"type": ["object", "null"]},
        },
    },
    "SeriesCatalog": {
        "type": "object",
        "required": ["series"],
        "properties": {
            "series": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "entity", "labels", "description", "metric"],
                    "properties": {
                        "name": {"type": "string"},
                        "entity": {"type": "string", "enum": list(series.KINDS)},
                        "labels": {"type": "array", "items": {"type": "string"}},
                        "description": {"type": "string"},
                        "metric": {
                            "type": "string",
                            "description": "The Prometheus family with this figure.",
                        },
                    },
                },
            }
        },
    },
}

_LABEL_DOC = "Only series whose label `{0}` equals this; a 400 for a series without that label."


def _paths() -> dict[str, Any]:
    time_from = _param(
        "from", f"Start of the range (default: an hour before `to`). {_TIME_PARAM_DOC}", {"type": "string"}
    )
    time_to = _param("to", f"End of the range (default: now). {_TIME_PARAM_DOC}", {"type": "string"})
    return {
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format 0.0.4), every family in docs/metrics.md",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _ERRORS["401"],
                    "503": _ERRORS["503"],
                },
            }
        },
        "/api/v1/snapshot": {
            "get": {
                "summary": "The latest snapshot",
                "operationId": "snapshot",
                "responses": {
                    "200": _json("Snapshot", "The latest snapshot."),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "503": _json(
                        "Error", "No snapshot yet (the first tick has not completed): `code` is `not_ready`."
                    ),
                },
            }
        },
        "/api/v1/findings": {
            "get": {
                "summary": "What needs a look now: the latest snapshot's findings",
                "operationId": "findings",
                "responses": {
                    "200": _json("Findings", "The active findings."),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "503": _json(
                        "Error", "No snapshot yet (the first tick has not completed): `code` is `not_ready`."
                    ),
                },
            }
        },
        "/api/v1/history": {
            "get": {
                "summary": "One series over a time range, downsampled",
                "operationId": "history",
                "parameters": [
                    _param("series", "A series name from /api/v1/series.", {"type": "string"}, required=True),
                    time_from,
                    time_to,
                    _param(
                        "points",
                        "At most this many buckets per series (default 200).",
                        {"type": "integer", "minimum": 1, "maximum": 10_000},
                    ),
                    _param("gpu", _LABEL_DOC.format("gpu"), {"type": "integer", "minimum": 0}),
                    *(
                        _param(k, _LABEL_DOC.format(k), {"type": "string"})
                        for k in ("uuid", "server", "model", "version")
                    ),
                ],
                "responses": {"200": _json("History", "Every matching series."), **_ERRORS},
            }
        },
        "/api/v1/events": {
            "get": {
                "summary": "Events in a time range, newest first",
                "operationId": "events",
                "parameters": [
                    time_from,
                    time_to,
                    _param(
                        "kinds",
                        "Comma-separated event kinds: " + ", ".join(k.value for k in model.EventKind) + ".",
                        {"type": "string"},
                    ),
                    _param(
                        "limit",
                        "At most this many events (default 1000).",
                        {"type": "integer", "minimum": 1, "maximum": 10_000},
                    ),
                ],
                "responses": {"200": _json("Events", "The events."), **_ERRORS},
            }
        },
        "/api/v1/health": {
            "get": {
                "summary": "Collectors, store and NVML status",
                "operationId": "health",
                "responses": {
                    "200": _json("Health", "How the daemon is doing."),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "503": _ERRORS["503"],
                },
            }
        },
        "/api/v1/series": {
            "get": {
                "summary": "The series catalog",
                "operationId": "series",
                "responses": {
                    "200": _json("SeriesCatalog", "Every series name."),
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "503": _ERRORS["503"],
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "400": _ERRORS["400"],
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": _ERRORS["401"],
                    "503": _ERRORS["503"],
                },
            }
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gpuwatch daemon",
            "version": __version__,
            "description": "GPU and Triton monitoring for one inference node: Prometheus /metrics and a "
            "JSON API over the daemon's latest snapshot and its history. Listens on 127.0.0.1:9477 "
            "by default; authentication (bearer token or HTTP basic) applies to every path when "
            "configured.",
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{}, {"bearer": []}, {"basic": []}],
    }
