"""Range queries: `series.History` answered from the database.

Place in the flow: JSON API, TUI client and `gpuwatch query` → `StoreHistory.query` /
`.events` → SQL on the tier tables. Readers have their own connections (WAL: they never wait
for the writer, the writer never waits for them), and each query reads inside one transaction,
so it sees one consistent moment of the file.

Which tier answers (whisper's rule, with `History`'s "at most `points` buckets"): of the
tiers whose KEEP still covers `start`, the coarsest one that gives at least `points` buckets
over the range (the finest covering tier if none does); if no tier covers `start`, the
coarsest. Buckets are `width` seconds wide, a whole multiple of that tier's resolution,
counted from `start` rounded down to that resolution, the last one taking the range's end
(`series.bucket_grid`: never more than `points` of them), exactly as `series.downsample`
cuts them, and the SQL does the downsampling (GROUP BY bucket): a 30-day query reads 720
hourly rows of one GPU and returns 200 points.

The newest stretch of a rollup tier is not rolled up yet (the current minute, the current
hour). A query reads the chosen tier up to where it is complete (`tier.rolled_until_ms`) and
the rest from the next finer tier, down to the raw seconds, so the latest data is never
missing from a long-range answer. A bucket made of several sources weighs each by its
number of samples, or for a weighted series (`Figure.weight`) by its stored weight: a
bucket's mean queue time is its Σ(queue time) / Σ(requests) from whichever tiers hold it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, exc, func, select

from gpuwatch import model, series
from gpuwatch.store import schema as sch
from gpuwatch.store.database import describe
from gpuwatch.store.errors import StoreError
from gpuwatch.store.figures import BY_SERIES
from gpuwatch.store.retention import Tier


def choose_tier(tiers: tuple[Tier, ...], start: float, end: float, points: int, now: float) -> int:
    """The index of the tier that answers a query (see the module docstring)."""
    covering = [i for i, tier in enumerate(tiers) if start >= now - tier.keep_seconds]
    if not covering:
        return len(tiers) - 1
    span = end - start
    chosen = covering[0]
    for index in covering:
        if span / tiers[index].resolution_seconds >= points:
            chosen = index
    return chosen


def bucket_width(resolution_seconds: float, start: float, end: float, points: int) -> float:
    """The width of a point's bucket, as `series.downsample` computes it."""
    return series.bucket_grid(resolution_seconds, start, end, points)[1]


class StoreHistory:
    """`series.History` over a gpuwatch database."""

    def __init__(
        self, engine: Engine, schema: sch.Schema, path: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._path = path
        self._schema = schema
        self._clock = clock
        self._columns: dict[str, set[str]] = {}

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._schema.tiers

    def query(
        self, name: str, match: dict[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        """`series.History.query`; a database that cannot be read raises `StoreError`."""
        with self._reading():
            return self._query(name, match, start, end, points)

    def events(
        self,
        start: float,
        end: float,
        kinds: Iterable[model.EventKind] | None = None,
        limit: int = 1000,
    ) -> list[model.Event]:
        """`series.History.events`; a database that cannot be read raises `StoreError`."""
        with self._reading():
            return self._events(start, end, kinds, limit)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except exc.DBAPIError as error:
            raise StoreError(f"cannot read the database {self._path}: {describe(error)}") from None

    def _query(
        self, name: str, match: dict[str, str], start: float, end: float, points: int
    ) -> list[series.SeriesData]:
        kind = series.info(name).entity.name  # UnknownSeriesError for a name not in the catalog
        figure = BY_SERIES[name]
        if end < start:
            return []
        tiers = self._schema.tiers
        chosen = choose_tier(tiers, start, end, points, self._clock())
        origin, width = series.bucket_grid(tiers[chosen].resolution_seconds, start, end, points)
        width_ms, origin_ms = round(width * 1000), round(origin * 1000)
        start_ms, end_ms = round(start * 1000), round(end * 1000)
        sums: dict[tuple[int, int], list[float]] = {}
        with self._engine.connect() as conn:
            entities = self._entities(conn, kind, match)
            if not entities:
                return []
            every = len(entities) == self._entity_count(conn, kind)
            rolled = dict(
                conn.execute(
                    select(self._schema.tier.c.resolution_s, self._schema.tier.c.rolled_until_ms)
                ).all()
            )
            lo = start_ms
            segments: list[tuple[int, int, int]] = []
            for index in range(chosen, 0, -1):
                res_ms = tiers[index].resolution_ms
                aligned = lo // res_ms * res_ms
                hi = min(end_ms + 1, int(rolled.get(tiers[index].resolution_seconds, 0)))
                if hi > aligned:
                    segments.append((index, aligned, hi))
                    # The segment holds the whole buckets that start before `hi`: the next
                    # finer tier starts after the last of them, or a bucket would count twice.
                    lo = -(-hi // res_ms) * res_ms
            segments.append((0, lo, end_ms + 1))
            for index, seg_lo, seg_hi in segments:
                if seg_hi <= seg_lo:
                    continue
                ids = None if every else list(entities)
                rows = self._segment(
                    conn,
                    kind,
                    index,
                    figure.column,
                    figure.raw_weight_column if index == 0 else figure.weight_column,
                    entity_ids=ids,
                    lo_ms=seg_lo,
                    hi_ms=seg_hi,
                    grid=(origin_ms, width_ms, max(1, points)),
                )
                for entity_id, bucket, total, count, low, high, plain, plain_count in rows:
                    if not plain_count:
                        continue
                    acc = sums.get((entity_id, bucket))
                    if acc is None:
                        sums[(entity_id, bucket)] = [
                            float(total),
                            float(count),
                            low,
                            high,
                            float(plain),
                            float(plain_count),
                        ]
                    else:
                        acc[0] += total
                        acc[1] += count
                        acc[2] = min(acc[2], low)
                        acc[3] = max(acc[3], high)
                        acc[4] += plain
                        acc[5] += plain_count
        by_entity: dict[int, list[series.Point]] = {}
        for (entity_id, bucket), (total, count, low, high, plain, plain_count) in sorted(sums.items()):
            # Weights adding up to 0: every interval in the bucket one shown again (`series.
            # repeated_servers`), not counted again; the bucket's value is their plain mean.
            mean = total / count if count > 0 else plain / plain_count
            by_entity.setdefault(entity_id, []).append(
                series.Point(
                    bucket / 1000,
                    figure.decode(mean),
                    figure.decode(low),
                    figure.decode(high),
                )
            )
        out = [
            series.SeriesData(series.SeriesKey(name, entities[entity_id]), width, tuple(found))
            for entity_id, found in by_entity.items()
        ]
        out.sort(key=lambda data: data.key.labels)
        return out

    def _events(
        self, start: float, end: float, kinds: Iterable[model.EventKind] | None, limit: int
    ) -> list[model.Event]:
        table = self._schema.event
        query = select(table).where(table.c.ts_ms >= round(start * 1000), table.c.ts_ms <= round(end * 1000))
        if kinds is not None:
            query = query.where(table.c.kind.in_([kind.value for kind in kinds]))
        query = query.order_by(table.c.ts_ms.desc(), table.c.id.desc()).limit(max(0, limit))
        known_kinds = {k.value for k in model.EventKind}
        known_severities = {s.value for s in model.Severity}
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            model.Event(
                timestamp=row.ts_ms / 1000,
                kind=model.EventKind(row.kind),
                severity=model.Severity(row.severity),
                message=row.message,
                gpu_index=row.gpu_index,
                gpu_uuid=row.gpu_uuid,
                server=row.server,
                model=row.model,
                version=row.version,
                code=row.code,
            )
            for row in rows
            # A kind or severity from a newer gpuwatch is left out, not an error.
            if row.kind in known_kinds and row.severity in known_severities
        ]

    # -- internals ---------------------------------------------------------------------------

    def _entities(
        self, conn: Connection, kind: str, match: dict[str, str]
    ) -> dict[int, tuple[tuple[str, str], ...]]:
        table = self._schema.entity
        found = {}
        for entity_id, labels_json in conn.execute(
            select(table.c.id, table.c.labels).where(table.c.kind == kind)
        ):
            labels = tuple((str(k), str(v)) for k, v in _loads(labels_json))
            if series.matches(series.SeriesKey("", labels), match):
                found[int(entity_id)] = labels
        return found

    def _entity_count(self, conn: Connection, kind: str) -> int:
        table = self._schema.entity
        return int(conn.execute(select(func.count()).where(table.c.kind == kind)).scalar_one())

    def _segment(
        self,
        conn: Connection,
        kind: str,
        tier_index: int,
        column: str,
        weight_column: str | None,
        *,
        entity_ids: list[int] | None,
        lo_ms: int,
        hi_ms: int,
        grid: tuple[int, int, int],
    ) -> list[tuple[int, int, float, float, float, float, float, float]]:
        table = self._schema.table(kind, tier_index)
        if not self._has_column(conn, table.name, column if tier_index == 0 else f"{column}_mean"):
            return []  # a series this database is older than
        if weight_column is not None and not self._has_column(conn, table.name, weight_column):
            weight_column = None  # a file from before weights: cannot happen after its migration
        origin_ms, width_ms, points = grid  # `series.bucket_grid`, `series.bucket_index`
        index = func.min((table.c.key.op(">>")(sch.ENTITY_BITS) - origin_ms) // width_ms, points - 1)
        bucket = index * width_ms + origin_ms
        if tier_index == 0:
            value = table.c[column]
            present = value
            if weight_column is None:
                aggregates: list[Any] = [func.sum(value), func.count(value)]
                plain: list[Any] = [func.sum(value), func.count(value)]
            else:
                weight = table.c[weight_column]
                aggregates = [func.total(value * weight), func.total(weight)]
                plain = [func.total(case((weight.is_not(None), value))), func.count(weight)]
            aggregates += [func.min(value), func.max(value), *plain]
        else:
            mean, samples = table.c[f"{column}_mean"], table.c.samples
            present = mean
            weight = samples if weight_column is None else table.c[weight_column]
            weighed = case((mean.is_not(None), weight))
            aggregates = [
                func.total(mean * weight),
                func.total(weighed),
                func.min(table.c[f"{column}_min"]),
                func.max(table.c[f"{column}_max"]),
                func.total(case((weighed.is_not(None), mean))),
                func.count(weighed),
            ]
        query = (
            select(table.c.entity_id, bucket, *aggregates)
            .where(
                table.c.key >= sch.key_floor(lo_ms),
                table.c.key < sch.key_floor(hi_ms),
                present.is_not(None),
            )
            .group_by(table.c.entity_id, bucket)
        )
        if entity_ids is not None:
            query = query.where(table.c.entity_id.in_(entity_ids))
        return [tuple(row) for row in conn.execute(query)]

    def _has_column(self, conn: Connection, table: str, column: str) -> bool:
        columns = self._columns.get(table)
        if columns is None:
            columns = {str(row[1]) for row in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
            if columns:
                self._columns[table] = columns
        return column in columns


def _loads(text: str) -> list[list[str]]:
    value: list[list[str]] = json.loads(text)
    return value
