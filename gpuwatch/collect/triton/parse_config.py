"""`GET /v2/models/NAME/versions/V/config` → what gpuwatch needs of a model's effective config.

Place in the flow: the poll (`poll.py`) fetches a model's config when the model bookkeeping
(`models.py`) says it is due (new, reset, or older than `config_refresh_seconds`) and hands the
decoded JSON to `parse_config`; the bookkeeping keeps the result and puts its batching and
instance facts on the model's `ModelStats`. Pure, no I/O; a wrong shape is a `ShapeError`
naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuwatch.collect.triton import parse_shape as shape
from gpuwatch.collect.triton.parse_shape import ShapeError


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What gpuwatch needs of a model's effective config (`GET /v2/models/NAME/config`)."""

    max_batch_size: int | None = None
    """0 means the model does not batch."""
    dynamic_batching: bool = False
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_seconds: float | None = None
    instance_count: int | None = None
    instance_kind: str | None = None
    """"GPU", "CPU", "MODEL", or kinds joined by "+"."""
    gpu_devices: tuple[int, ...] = ()
    """instance_group `gpus`: CUDA device numbers as the Triton process sees them."""
    backend: str | None = None
    platform: str | None = None
    ensemble_steps: tuple[str, ...] = ()
    response_cache: bool = False
    decoupled: bool = False


def parse_config(doc: Any) -> ModelConfig:
    if not isinstance(doc, dict):
        raise ShapeError(f"expected a model config object, got {shape.kind(doc)}")
    mbs = doc.get("max_batch_size")
    max_batch = shape.count(mbs, "max_batch_size") if mbs is not None else None
    dyn = doc.get("dynamic_batching")
    preferred: tuple[int, ...] = ()
    delay: float | None = None
    if dyn is not None:
        if not isinstance(dyn, dict):
            raise ShapeError(f"dynamic_batching: expected an object, got {shape.kind(dyn)}")
        pref = dyn.get("preferred_batch_size", [])
        if not isinstance(pref, list):
            raise ShapeError(
                f"dynamic_batching.preferred_batch_size: expected a list, got {shape.kind(pref)}"
            )
        preferred = tuple(
            sorted(
                {shape.count(p, f"dynamic_batching.preferred_batch_size[{i}]") for i, p in enumerate(pref)}
            )
        )
        raw_delay = dyn.get("max_queue_delay_microseconds", 0)
        delay = shape.count(raw_delay, "dynamic_batching.max_queue_delay_microseconds") / 1e6
    groups = doc.get("instance_group", [])
    if not isinstance(groups, list):
        raise ShapeError(f"instance_group: expected a list, got {shape.kind(groups)}")
    count = 0
    kinds: list[str] = []
    gpus: set[int] = set()
    for i, g in enumerate(groups):
        where = f"instance_group[{i}]"
        if not isinstance(g, dict):
            raise ShapeError(f"{where}: expected an object, got {shape.kind(g)}")
        n = shape.count(g.get("count", 1), f"{where}.count")
        kind = str(g.get("kind", "KIND_AUTO")).removeprefix("KIND_")
        devices = g.get("gpus", [])
        if not isinstance(devices, list):
            raise ShapeError(f"{where}.gpus: expected a list, got {shape.kind(devices)}")
        listed = [shape.count(d, f"{where}.gpus[{j}]") for j, d in enumerate(devices)]
        gpus.update(listed)
        # `count` instances on each listed GPU (Triton's effective config lists them all).
        count += n * len(listed) if kind == "GPU" and listed else n
        if kind not in kinds:
            kinds.append(kind)
    steps: tuple[str, ...] = ()
    scheduling = doc.get("ensemble_scheduling")
    if isinstance(scheduling, dict):
        raw_steps = scheduling.get("step", [])
        if not isinstance(raw_steps, list):
            raise ShapeError(f"ensemble_scheduling.step: expected a list, got {shape.kind(raw_steps)}")
        names = []
        for i, s in enumerate(raw_steps):
            if not isinstance(s, dict) or not isinstance(s.get("model_name"), str):
                raise ShapeError(f"ensemble_scheduling.step[{i}].model_name: expected a string")
            names.append(s["model_name"])
        steps = tuple(names)
    cache = doc.get("response_cache")
    policy = doc.get("model_transaction_policy")
    return ModelConfig(
        max_batch_size=max_batch,
        dynamic_batching=dyn is not None,
        preferred_batch_sizes=preferred,
        max_queue_delay_seconds=delay,
        instance_count=count if groups else None,
        instance_kind="+".join(kinds) if kinds else None,
        gpu_devices=tuple(sorted(gpus)),
        backend=shape.text(doc.get("backend")),
        platform=shape.text(doc.get("platform")),
        ensemble_steps=steps,
        response_cache=isinstance(cache, dict) and cache.get("enable") is True,
        decoupled=isinstance(policy, dict) and policy.get("decoupled") is True,
    )
