"""Rollups: one min/mean/max row per bucket, entity and tier, by SQL GROUP BY.

Place in the flow: the writer runs `rollup_step` as a task whenever a bucket of a rollup tier
has become complete; the rows land in that tier's table and queries of long ranges read them.

A bucket of tier k is complete when its source, tier k − 1, has data past the bucket's end:
for tier 1, when a snapshot stamped at or after the end has been written (snapshots come in
time order from one engine); for tier k > 1, when tier k − 1 is rolled up past it. How far
each tier is complete is `tier.rolled_until_ms`, updated in the same transaction as the rows,
so a kill at any moment leaves either both or neither. Rows are written with INSERT OR
REPLACE on the (bucket, entity) key, so running a step twice changes nothing.

One step rolls up at most `STEP_SOURCE_BUCKETS` buckets of the source (10 minutes of raw
seconds, 10 hours of minutes) and reports whether more is due: a back-fill after days of
downtime is many short steps between which snapshots are written, never one long one.
Stretches without data are skipped, not filled: no data is no row, never a zero.

The mean of a tier built from another is the mean of the source means weighted by their
sample counts; a series missing for part of a bucket (a GPU that came back) weighs with the
bucket's whole sample count, a documented approximation. A weighted series (`Figure.weight`:
a per-request mean, a rate) is exact instead: its mean is Σ(value × weight) / Σ weight over
the rows where it has a value (the plain mean where the weights add up to 0), and
`<series>_weight` keeps that Σ weight for the next tier, so
an hour's mean queue time is the hour's Σ queue time / Σ requests, however bursty the load.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Select,
    Table,
    bindparam,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import sqlite

from gpuwatch.store import schema as sch
from gpuwatch.store.figures import FIGURES, KINDS

STEP_SOURCE_BUCKETS = 600


@dataclass(frozen=True, slots=True)
class RollupResult:
    rolled_until_ms: int
    more: bool
    rows: int


def horizon_ms(complete_until_ms: int, resolution_ms: int) -> int:
    """Buckets that start before this are complete, given the source is complete until
    `complete_until_ms` (exclusive)."""
    return complete_until_ms // resolution_ms * resolution_ms


def rollup_step(
    conn: Connection,
    schema: sch.Schema,
    tier_index: int,
    rolled_until_ms: int,
    source_complete_ms: int,
) -> RollupResult:
    """Roll up one bounded step into tier `tier_index` (≥ 1), in the caller's transaction."""
    tier = schema.tiers[tier_index]
    source_tier = schema.tiers[tier_index - 1]
    res = tier.resolution_ms
    horizon = horizon_ms(source_complete_ms, res)
    start = rolled_until_ms
    if start >= horizon:
        return RollupResult(rolled_until_ms, False, 0)
    first = _first_source_ms(conn, schema, tier_index - 1, start)
    if first is None or first >= horizon:
        _save(conn, schema, tier_index, horizon)
        return RollupResult(horizon, False, 0)
    start = max(start, first // res * res)
    span = max(res, STEP_SOURCE_BUCKETS * source_tier.resolution_ms // res * res)
    end = min(horizon, start + span)
    rows = 0
    for kind in KINDS:
        source, target = schema.table(kind, tier_index - 1), schema.table(kind, tier_index)
        sql, names, fixed = _rollup_sql(source, target, kind, res)
        values = {**fixed, "lo": sch.key_floor(start), "hi": sch.key_floor(end)}
        result = conn.exec_driver_sql(sql, tuple(values[name] for name in names))
        rows += max(0, result.rowcount)
    _save(conn, schema, tier_index, end)
    return RollupResult(end, end < horizon, rows)


def _save(conn: Connection, schema: sch.Schema, tier_index: int, rolled_until_ms: int) -> None:
    resolution = schema.tiers[tier_index].resolution_seconds
    conn.execute(
        update(schema.tier)
        .where(schema.tier.c.resolution_s == resolution)
        .values(rolled_until_ms=rolled_until_ms)
    )


def _first_source_ms(conn: Connection, schema: sch.Schema, tier_index: int, from_ms: int) -> int | None:
    """The time of the first source row at or after `from_ms`, over every entity kind."""
    firsts = []
    for kind in KINDS:
        table = schema.table(kind, tier_index)
        key = conn.execute(
            select(func.min(table.c.key)).where(table.c.key >= sch.key_floor(from_ms))
        ).scalar()
        if key is not None:
            firsts.append(int(key) >> sch.ENTITY_BITS)
    return min(firsts) if firsts else None


@functools.cache
def _rollup_sql(
    source: Table, target: Table, kind: str, resolution_ms: int
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The rollup statement as SQLite's text, its parameters' names in order and the values of
    those it fixes, compiled once: SQLAlchemy compiled its ~450 columns again at each rollup
    (most of the writer's CPU in a steady daemon)."""
    compiled = _rollup_statement(source, target, kind, resolution_ms).compile(dialect=sqlite.dialect())
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


@functools.cache
def _rollup_statement(source: Table, target: Table, kind: str, resolution_ms: int) -> Insert:
    """INSERT OR REPLACE INTO target SELECT … FROM source WHERE key in [:lo, :hi) GROUP BY …,
    built once per table pair: with ~150 columns, building it costs more than running it."""
    query = _select_buckets(source, kind, resolution_ms, raw=source.name.endswith("_raw"))
    query = query.where(source.c.key >= bindparam("lo"), source.c.key < bindparam("hi"))
    return insert(target).prefix_with("OR REPLACE").from_select([c.name for c in target.columns], query)


def _select_buckets(source: Table, kind: str, resolution_ms: int, *, raw: bool) -> Select[Any]:
    bucket = (source.c.key.op(">>")(sch.ENTITY_BITS) // resolution_ms) * resolution_ms
    key = bucket.op("<<")(sch.ENTITY_BITS).op("|")(source.c.entity_id)
    columns: list[ColumnElement[Any]] = [key.label("key"), source.c.entity_id.label("entity_id")]
    weights: list[ColumnElement[Any]] = []
    if raw:
        columns.append(func.count().label("samples"))
        for f in FIGURES[kind]:
            value = source.c[f.column]
            if f.raw_weight_column is None:
                mean: ColumnElement[Any] = func.round(func.avg(value))
            else:
                weighed = _weighed(value, source.c[f.raw_weight_column])
                mean = _weighted_mean(value, weighed)
                weights.append(func.sum(weighed).label(f"{f.column}_weight"))
            columns += [
                func.min(value).label(f"{f.column}_min"),
                mean.label(f"{f.column}_mean"),
                func.max(value).label(f"{f.column}_max"),
            ]
    else:
        samples = source.c.samples
        columns.append(func.sum(samples).label("samples"))
        for f in FIGURES[kind]:
            source_mean = source.c[f"{f.column}_mean"]
            weight: ColumnElement[Any]
            if f.weight_column is None:
                weight = case((source_mean.is_not(None), samples))
                mean = func.round(func.total(source_mean * weight) / func.sum(weight))
            else:
                weight = _weighed(source_mean, source.c[f.weight_column])
                mean = _weighted_mean(source_mean, weight)
                weights.append(func.sum(weight).label(f.weight_column))
            columns += [
                func.min(source.c[f"{f.column}_min"]).label(f"{f.column}_min"),
                mean.label(f"{f.column}_mean"),
                func.max(source.c[f"{f.column}_max"]).label(f"{f.column}_max"),
            ]
    return select(*columns, *weights).group_by(source.c.entity_id, bucket)


def _weighted_mean(value: ColumnElement[Any], weight: ColumnElement[Any]) -> ColumnElement[Any]:
    """Σ(value × weight) / Σ weight; the plain mean where the weights add up to 0 (every
    interval in the bucket one shown again, `series.repeated_servers`)."""
    return case(
        (func.sum(weight) > 0, func.round(func.total(value * weight) / func.sum(weight))),
        else_=func.round(func.avg(case((weight.is_not(None), value)))),
    )


def _weighed(value: ColumnElement[Any], weight: ColumnElement[Any]) -> ColumnElement[Any]:
    """A row's weight where it has a value, else NULL (which sum() and total() leave out)."""
    return case((value.is_not(None), weight))
