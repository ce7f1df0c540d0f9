"""The JSON API under /api/v1/: request → validated parameters → JSON response, no HTTP here.

Place in the flow: the HTTP server (`gpuwatch.serve.http`) hands each GET under /api/v1/ to
`Api.handle`; answers come from the engine's latest snapshot (through `gpuwatch.jsonform`, the one
JSON form of the data model), the engine's live collector health and the history
(`gpuwatch.series.History`: the daemon passes its SQLite store's). Nothing here calls NVML or
Triton.

Every parameter is checked before anything is read: a malformed one, an unknown one or a
repeated one is a 400 whose JSON body says which and what is expected. A history that fails
(a database error) is a 503 that says so; a 500 means a bug in gpuwatch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from gpuwatch import jsonform, model, series, timespec
from gpuwatch.serve import openapi

log = logging.getLogger("gpuwatch.api")

PREFIX = "/api/v1/"
DEFAULT_RANGE_SECONDS = 3600.0
DEFAULT_POINTS = 200
MAX_POINTS = 10_000
DEFAULT_EVENTS = 1000
MAX_EVENTS = 10_000
MAX_VALUE_CHARS = 256
LABEL_FILTERS: tuple[str, ...] = tuple(dict.fromkeys(label for f in series.CATALOG for label in f.labels))
"""Every label a series has (gpu, uuid, server, model, version): the history's filters."""
NOT_READY = "not_ready"
UNKNOWN_SERIES = "unknown_series"
"""The error code of /history's 400 for a series name the catalog does not have."""
"""The error code of /snapshot's 503 before the first tick: wait, nothing is wrong."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class BadRequest(ValueError):
    """A parameter the API cannot use; str() is the message the client gets with its 400, and
    `code` the machine-readable reason where a client acts on it (`UNKNOWN_SERIES`)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Query:
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str, allowed: tuple[str, ...]) -> _Query:
        try:
            parsed = parse_qs(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"query string is not valid UTF-8 URL encoding: {exc}") from None
        values = {}
        for key, got in parsed.items():
            if key not in allowed:
                expected = ", ".join(allowed) if allowed else "none"
                raise BadRequest(f"unknown parameter {key!r}: expected {expected}")
            if len(got) > 1:
                raise BadRequest(f"parameter {key!r} given {len(got)} times: give it once")
            if len(got[0]) > MAX_VALUE_CHARS:
                raise BadRequest(f"parameter {key!r} is longer than {MAX_VALUE_CHARS} characters")
            values[key] = got[0]
        return cls(values)

    def get(self, key: str) -> str | None:
        return self.values.get(key)


def parse_time(text: str, name: str, now: float) -> float:
    """`from` and `to`: the one grammar of moments (`timespec.parse_moment`: Unix seconds, `now`,
    `-1h` or `1h` before now, an ISO 8601 date and time)."""
    try:
        return timespec.parse_moment(text, now)
    except ValueError as exc:
        raise BadRequest(f"{name}={text!r}: {exc}") from None


def parse_int(text: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if text is None:
        return default
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise BadRequest(f"{name}={text!r}: expected an integer from {lo} to {hi}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}={text!r}: expected an integer from {lo} to {hi}")
    return value


def _range(q: _Query, now: float) -> tuple[float, float]:
    end = parse_time(q.get("to") or "now", "to", now)
    raw_from = q.get("from")
    start = parse_time(raw_from, "from", now) if raw_from else end - DEFAULT_RANGE_SECONDS
    if start > end:
        raise BadRequest(f"from ({start:.3f}) is after to ({end:.3f})")
    return start, end


class Api:
    """The endpoints. Callables are passed in, so the API never holds the engine itself."""

    def __init__(
        self,
        latest: Callable[[], model.Snapshot | None],
        history: series.History,
        collectors: Callable[[], tuple[model.CollectorHealth, ...]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._latest = latest
        self._history = history
        self._collectors = collectors
        self._clock = clock
        self._routes: dict[str, tuple[tuple[str, ...], Callable[[_Query], Response]]] = {
            "snapshot": ((), self._snapshot),
            "findings": ((), self._findings),
            "history": (("series", "from", "to", "points", *LABEL_FILTERS), self._history_range),
            "events": (("from", "to", "kinds", "limit"), self._events),
            "health": ((), self._health),
            "series": ((), self._series),
            "openapi.json": ((), self._openapi),
        }

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(PREFIX + name for name in self._routes)

    def handle(self, path: str, query: str) -> Response:
        """Answer GET `path` (under /api/v1/) with `query` (the raw query string)."""
        route = self._routes.get(path.removeprefix(PREFIX)) if path.startswith(PREFIX) else None
        if route is None:
            return error(404, f"no such endpoint {path!r}: see {PREFIX}openapi.json")
        allowed, handler = route
        try:
            return handler(_Query.parse(query, allowed))
        except BadRequest as exc:
            return error(400, str(exc), code=exc.code)

    # -- endpoints ---------------------------------------------------------------------------

    def _snapshot(self, q: _Query) -> Response:
        snapshot = self._latest()
        if snapshot is None:
            return error(
                503,
                "no snapshot yet: the daemon is starting, its first tick has not completed",
                code=NOT_READY,
            )
        return ok(jsonform.encode_snapshot(snapshot))

    def _findings(self, q: _Query) -> Response:
        snapshot = self._latest()
        if snapshot is None:
            return error(
                503,
                "no snapshot yet: the daemon is starting, its first tick has not completed",
                code=NOT_READY,
            )
        return ok(
            {"timestamp": snapshot.timestamp, "findings": [jsonform.encode(f) for f in snapshot.findings]}
        )

    def _history_range(self, q: _Query) -> Response:
        name = q.get("series")
        if not name:
            raise BadRequest(f"series is required: one of the names at {PREFIX}series")
        match = {k: v for k in LABEL_FILTERS if (v := q.get(k)) is not None}
        try:
            series.check_query(name, match)
        except series.UnknownSeriesError:
            raise BadRequest(
                f"series={name!r} is not a series: see {PREFIX}series for the names", code=UNKNOWN_SERIES
            ) from None
        except series.LabelError as exc:
            labels = ", ".join(exc.figure.labels)
            raise BadRequest(f"{exc}: its labels are {labels}") from None
        start, end = _range(q, self._clock())
        points = parse_int(q.get("points"), "points", DEFAULT_POINTS, 1, MAX_POINTS)
        if "gpu" in match:
            match["gpu"] = str(parse_int(match["gpu"], "gpu", 0, 0, 1_000_000))
        try:
            result = self._history.query(name, match, start, end, points)
        except series.UnknownSeriesError:
            raise BadRequest(
                f"series={name!r} is not a series: see {PREFIX}series", code=UNKNOWN_SERIES
            ) from None
        except Exception as exc:
            log.exception("history query failed")
            return error(503, f"history is unavailable: {type(exc).__name__}: {exc}")
        return ok(jsonform.encode_history(name, match, start=start, end=end, points=points, results=result))

    def _events(self, q: _Query) -> Response:
        start, end = _range(q, self._clock())
        limit = parse_int(q.get("limit"), "limit", DEFAULT_EVENTS, 1, MAX_EVENTS)
        kinds: list[model.EventKind] | None = None
        raw = q.get("kinds")
        if raw is not None:
            kinds = []
            for word in raw.split(","):
                try:
                    kinds.append(model.EventKind(word.strip()))
                except ValueError:
                    valid = ", ".join(k.value for k in model.EventKind)
                    raise BadRequest(
                        f"kinds: {word.strip()!r} is not an event kind: expected {valid}"
                    ) from None
        try:
            events = self._history.events(start, end, kinds, limit)
        except Exception as exc:
            log.exception("events query failed")
            return error(503, f"history is unavailable: {type(exc).__name__}: {exc}")
        return ok(jsonform.encode_events(start, end, events[:limit]))

    def _health(self, q: _Query) -> Response:
        snapshot = self._latest()
        collectors = self._collectors()
        now = self._clock()
        store = snapshot.store if snapshot else None
        nvml_status = snapshot.nvml_status if snapshot else None
        problems = [
            f"collector {c.name}: {c.last_error or 'stale'}"
            for c in collectors
            if c.stale or (c.runs_count and not c.ok)
        ]
        if nvml_status:
            problems.append(f"nvml: {nvml_status}")
        if store is not None and not store.ok:
            problems.append(f"store: {store.last_error or 'not writing'}")
        status = "starting" if snapshot is None else "degraded" if problems else "ok"
        return ok(
            {
                "status": status,
                "problems": problems,
                "snapshot_timestamp": snapshot.timestamp if snapshot else None,
                "snapshot_age_seconds": max(0.0, now - snapshot.timestamp) if snapshot else None,
                "nvml": {"up": snapshot is not None and nvml_status is None, "status": nvml_status},
                "collectors": [jsonform.encode(c) for c in collectors],
                "store": jsonform.encode(store) if store is not None else None,
                "node": jsonform.encode(snapshot.node) if snapshot else None,
            }
        )

    def _series(self, q: _Query) -> Response:
        return ok(
            {
                "series": [
                    {
                        "name": f.name,
                        "entity": f.entity.name,
                        "labels": list(f.labels),
                        "description": f.help,
                        "metric": f.metric,
                    }
                    for f in series.CATALOG
                ]
            }
        )

    def _openapi(self, q: _Query) -> Response:
        return ok(openapi.document())


def ok(doc: Mapping[str, Any]) -> Response:
    return Response(200, json.dumps(doc, allow_nan=False, separators=(",", ":")).encode())


def error(
    status: int, message: str, headers: tuple[tuple[str, str], ...] = (), *, code: str | None = None
) -> Response:
    """`{"error": message, "status": status}`, and `"code"` where a client acts on the error
    (`NOT_READY`, `UNKNOWN_SERIES`): clients read the code, the message is for people and may change."""
    doc: dict[str, str | int] = {"error": message, "status": status}
    if code is not None:
        doc["code"] = code
    return Response(status, json.dumps(doc).encode(), headers=headers)
