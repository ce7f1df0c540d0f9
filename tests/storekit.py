"""Helpers for the store's tests: small snapshots with chosen values, and stores on tmp files."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuwatch import config, model
from gpuwatch.store import Store, open_store

NODE = model.NodeInfo(hostname="node-1", gpuwatch_version="0.1.0", source="recorded")


def gpu(index: int, **values: Any) -> model.GpuSample:
    return model.GpuSample(index=index, uuid=f"GPU-{index:04d}", **values)


def model_stats(name: str, version: str = "1", **interval: Any) -> model.ModelStats:
    return model.ModelStats(
        server="local",
        name=name,
        version=version,
        state="READY",
        pending_requests=interval.pop("pending_requests", None),
        interval=model.ModelInterval(interval_seconds=1.0, **interval) if interval else None,
    )


def snapshot(
    timestamp: float,
    gpus: Iterable[model.GpuSample] = (),
    models: Iterable[model.ModelStats] = (),
    events: Iterable[model.Event] = (),
) -> model.Snapshot:
    models = tuple(models)
    triton = (
        (model.TritonServerStatus("local", "http://127.0.0.1:8000", model.ServerState.UP, models=models),)
        if models
        else ()
    )
    return model.Snapshot(
        timestamp=timestamp, node=NODE, gpus=tuple(gpus), triton=triton, events=tuple(events)
    )


def settings(db: Path, **store: Any) -> config.Settings:
    base = config.Settings()
    return dataclasses.replace(
        base,
        daemon=dataclasses.replace(base.daemon, state_dir=str(db.parent), database=str(db)),
        store=dataclasses.replace(base.store, **store),
    )


def open_test_store(db: Path, clock: Any, **store: Any) -> Store:
    return open_store(settings(db, **store), clock=clock)


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file directly with the sqlite3 module: what is on disk, not what the store says."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, params).fetchall()
