"""A recorded Triton server for `--demo`: real captures replayed behind an httpx transport.

Place in the flow: `gpuwatch.demo.assemble` gives the real `TritonCollector` a
`RecordedTriton` as its httpx transport, so the demo runs exactly the code that polls a real
server — parsing, derivations, resets and events — with no server running.

The capture (`data/triton/demo.jsonl.gz`, made by `tools/record_triton_demo.py`) holds, once a
second for 150 s, the raw bodies of `/metrics`, `/v2/models/stats`, the repository index and
each changed model config of a real Triton 2.51 under a varying load, with a model whose
failure share rises and falls, a reload with a config override (statistics restart, /metrics
go on) and an unload/load. The replay:

- moves through the frames on the injected clock, interpolating counters between two frames so
  that two polls half a second apart still see traffic (a counter that went down is a reset in
  the capture: it steps, it is not interpolated);
- loops without a seam: on each pass a counter continues from where the previous pass ended
  (the part of a counter before its first recorded reset is lifted by the previous pass's end;
  the parts after a reset replay as recorded, so the recorded reset happens again each pass);
- places the instances on GPUs (the capture was made on a machine without one): the configs'
  `instance_group` become KIND_GPU on the demo GPUs and each model's counters are split over
  one series per GPU with Triton's `gpu_uuid` label, as a GPU server prints them.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import unquote

import httpx

from gpuwatch.demo.triton_faults import Fault, FaultPlan, metrics_role, stats_role
from gpuwatch.model import ModelState

RECORDING = "data/triton/demo.jsonl.gz"
DEMO_PLACEMENT: dict[str, tuple[int, ...]] = {
    "resnet50": (0, 1),
    "bert_base": (2,),
    "embedder": (3,),
}
"""Model → demo GPU indexes (taken modulo the number of demo GPUs); others stay on the CPU."""

_SPLIT_FAMILIES = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)
"""Families a GPU instance labels with gpu_uuid (failures and the pending count never are)."""
_MODEL_LABEL = re.compile(r'model="((?:[^"\\]|\\.)*)"')

SeriesId = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Recording:
    header: dict[str, Any]
    frames: list[dict[str, Any]]

    @property
    def period_seconds(self) -> float:
        return float(self.header.get("period_seconds", 1.0))


def load_recording(name: str = RECORDING) -> Recording:
    raw = resources.files("gpuwatch.demo").joinpath(name).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return Recording(json.loads(lines[0]), [json.loads(line) for line in lines[1:] if line.strip()])


class _Series:
    """One counter across the frames, and how each pass of the loop lifts it."""

    __slots__ = ("first_segment_end", "lift", "resets", "values")

    def __init__(self, values: list[float | None]) -> None:
        self.values = values
        present = [(i, v) for i, v in enumerate(values) if v is not None]
        # A reset is a drop, or a return after an absence (unload then load).
        self.resets = [i for (j, a), (i, b) in itertools.pairwise(present) if b < a or i != j + 1]
        self.first_segment_end = self.resets[0] if self.resets else len(values)
        last_start = self.resets[-1] if self.resets else (present[0][0] if present else 0)
        first_value = values[0]
        if first_value is None or not present:
            self.lift = 0.0  # not there at the start of the capture: replays as recorded
            return
        tail = [v for i, v in present if i >= last_start]
        step = (tail[-1] - tail[0]) / max(1, len(tail) - 1)
        self.lift = present[-1][1] - first_value + round(step)

    def at(self, frame: int, passes: int) -> float | None:
        value = self.values[frame]
        if value is None or not passes or not self.lift:
            return value
        if not self.resets:
            return value + passes * self.lift
        return value + self.lift if frame < self.first_segment_end else value


class RecordedTriton(httpx.BaseTransport):
    """Answers Triton's HTTP API and metrics port from the capture, on the injected clock."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        gpu_uuids: Sequence[str] = (),
        placement: dict[str, tuple[int, ...]] | None = None,
        start_offset_seconds: float = 20.0,
        recording: Recording | None = None,
    ) -> None:
        self._clock = clock
        self._t0 = clock() - start_offset_seconds
        self._rec = recording or load_recording()
        self._period = self._rec.period_seconds
        self._n = len(self._rec.frames)
        self._uuids = list(gpu_uuids)
        self._placement = {
            m: tuple(sorted({g % len(self._uuids) for g in gpus}))
            for m, gpus in (DEMO_PLACEMENT if placement is None else placement).items()
            if self._uuids
        }
        self._lock = threading.Lock()
        self._started = clock()
        self.faults = FaultPlan()
        self._prepare()

    # -- preparing the capture ------------------------------------------------------------

    def _prepare(self) -> None:
        frames = self._rec.frames
        self._configs: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        for f in frames:
            for key, cfg in (f.get("configs") or {}).items():
                current[key] = self._place_config(cfg)
            self._configs.append(dict(current))
        # Metrics: each frame as lines; sample lines as (series key, counter?) with values apart.
        self._lines: list[list[tuple[str, str | None]]] = []
        counters: set[str] = set()
        metric_values: dict[str, list[float | None]] = {}
        for i, f in enumerate(frames):
            lines: list[tuple[str, str | None]] = []
            family_type: dict[str, str] = {}
            for line in f["metrics"].splitlines():
                if not line.strip():
                    continue
                if line.startswith("#"):
                    parts = line.split()
                    if len(parts) >= 4 and parts[1] == "TYPE":
                        family_type[parts[2]] = parts[3]
                    lines.append((line, None))
                    continue
                key, _, value = line.rpartition(" ")
                family = key.split("{", 1)[0]
                if family_type.get(family) == "counter":
                    counters.add(key)
                metric_values.setdefault(key, [None] * len(frames))[i] = float(value)
                lines.append((line, key))
            self._lines.append(lines)
        self._metric_counters = counters
        self._metric_series = {k: _Series(v) for k, v in metric_values.items()}
        # Statistics: every numeric leaf of every model entry (batch bins filled in, see below).
        stats_values: dict[SeriesId, list[float | None]] = {}
        self._bins: dict[tuple[str, str], list[int]] = {}
        for f in frames:
            for entry in (f.get("stats") or {}).get("model_stats", []):
                key = (entry["name"], entry["version"])
                sizes = self._bins.setdefault(key, [])
                for b in entry.get("batch_stats", []):
                    if b["batch_size"] not in sizes:
                        sizes.append(b["batch_size"])
        for sizes in self._bins.values():
            sizes.sort()
        for i, f in enumerate(frames):
            for entry in (f.get("stats") or {}).get("model_stats", []):
                for sid, value in self._stats_leaves(entry):
                    stats_values.setdefault(sid, [None] * len(frames))[i] = value
        self._stats_series = {k: _Series(v) for k, v in stats_values.items()}

    def _stats_leaves(self, entry: dict[str, Any]) -> list[tuple[SeriesId, float]]:
        key = (entry["name"], entry["version"])
        out: list[tuple[SeriesId, float]] = [
            ((*key, "inference_count"), entry["inference_count"]),
            ((*key, "execution_count"), entry["execution_count"]),
        ]
        for leaf, d in entry["inference_stats"].items():
            out += [((*key, leaf, "count"), d["count"]), ((*key, leaf, "ns"), d["ns"])]
        have = {b["batch_size"]: b for b in entry.get("batch_stats", [])}
        for size in self._bins.get(key, []):
            b = have.get(size)
            for leaf in ("compute_input", "compute_infer", "compute_output"):
                # A batch size not run yet in this frame is 0 so far (Triton leaves it out).
                count = b[leaf]["count"] if b else 0
                ns = b[leaf]["ns"] if b else 0
                out += [
                    ((*key, "batch", size, leaf, "count"), count),
                    ((*key, "batch", size, leaf, "ns"), ns),
                ]
        return out

    def _place_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        gpus = self._placement.get(cfg.get("name", ""))
        if not gpus:
            return cfg
        cfg = json.loads(json.dumps(cfg))
        total = sum(int(g.get("count", 1)) for g in cfg.get("instance_group", [])) or 1
        cfg["instance_group"] = [
            {
                "name": f"{cfg['name']}_0",
                "kind": "KIND_GPU",
                "count": max(1, total // len(gpus)),
                "gpus": list(gpus),
                "secondary_devices": [],
                "profile": [],
                "passive": False,
                "host_policy": "",
            }
        ]
        return cfg

    # -- time -------------------------------------------------------------------------------

    def _position(self) -> tuple[int, float]:
        """(global frame number, fraction of the way to the next one)."""
        t = max(0.0, (self._clock() - self._t0) / self._period)
        g = math.floor(t)
        return g, t - g

    def _value(self, series: _Series, g: int, frac: float, counter: bool) -> float | None:
        frame, passes = g % self._n, g // self._n
        if not counter:
            return series.values[frame]  # a gauge (the pending count) is shown as recorded
        now = series.at(frame, passes)
        if now is None or frac <= 0:
            return now
        nxt = series.at((g + 1) % self._n, (g + 1) // self._n)
        if nxt is None or nxt < now:
            return now  # a reset in the capture steps; it is not interpolated
        return math.floor(now + (nxt - now) * frac)

    # -- rendering --------------------------------------------------------------------------

    def metrics_text(self) -> str:
        g, frac = self._position()
        elapsed = self._clock() - self._started
        rows: list[tuple[str, str | None, str | None]] = []  # (line or key, model, …)
        values: dict[str, float] = {}
        by_model: dict[str, list[str]] = {}
        for line, key in self._lines[g % self._n]:
            if key is None:
                rows.append((line, None, None))
                continue
            value = self._value(self._metric_series[key], g, frac, key in self._metric_counters)
            if value is None:
                continue
            match = _MODEL_LABEL.search(key)
            name = match.group(1) if match else None
            if name is not None and self.faults.state(name, elapsed) not in (None, ModelState.READY):
                continue  # a model that is not ready has left /metrics
            values[key] = value
            rows.append((key, name, key))
            if name is not None and name in self.faults.faults:
                by_model.setdefault(name, []).append(key)
        for name, keys in by_model.items():
            raw: dict[object, float] = {k: values[k] for k in keys}
            served = self.faults.apply("metrics", name, elapsed, raw, {k: metrics_role(k) for k in keys})
            for k in keys:
                values[k] = served[k]
        out = []
        for text, _, key in rows:
            out.extend([text] if key is None else self._placed_lines(key, values[key]))
        return "\n".join(out) + "\n"

    def _placed_lines(self, key: str, value: float) -> list[str]:
        family = key.split("{", 1)[0]
        match = _MODEL_LABEL.search(key)
        gpus = self._placement.get(match.group(1)) if match else None
        if not gpus or family not in _SPLIT_FAMILIES or "{" not in key:
            return [f"{key} {_number(value)}"]
        n = len(gpus)
        whole = int(value)
        lines = []
        for i, gpu in enumerate(gpus):
            part = (whole + i) // n  # n near-equal parts that sum to the whole, each monotone
            labelled = key.replace("{", f'{{gpu_uuid="{self._uuids[gpu]}",', 1)
            lines.append(f"{labelled} {part}")
        return lines

    def stats_doc(self) -> dict[str, Any] | None:
        g, frac = self._position()
        frame = self._rec.frames[g % self._n]
        doc = frame.get("stats")
        if doc is None:
            return None
        now_ms = int(self._clock() * 1000)
        elapsed = self._clock() - self._started
        entries = []
        for entry in doc.get("model_stats", []):
            key = (entry["name"], entry["version"])
            if self.faults.state(entry["name"], elapsed) not in (None, ModelState.READY):
                continue  # not ready: the statistics no longer list it
            paths: list[tuple[Any, ...]] = [("inference_count",), ("execution_count",)]
            paths += [(leaf, part) for leaf in entry["inference_stats"] for part in ("count", "ns")]
            paths += [
                ("batch", size, leaf, part)
                for size in self._bins.get(key, [])
                for leaf in ("compute_input", "compute_infer", "compute_output")
                for part in ("count", "ns")
            ]
            raw: dict[tuple[Any, ...], float] = {
                p: self._value(self._stats_series[(*key, *p)], g, frac, True) or 0 for p in paths
            }
            last = entry.get("last_inference", 0)
            raw[("last_inference",)] = now_ms - (frame["wall_ms"] - last) if last else 0
            if entry["name"] in self.faults.faults:
                roles: dict[object, str] = {
                    p: "last_inference" if p == ("last_inference",) else stats_role(p) for p in raw
                }
                served = self.faults.apply("stats", entry["name"], elapsed, dict(raw), roles)
                raw = {p: served[p] for p in raw}

            def val(*path: Any, raw: dict[tuple[Any, ...], float] = raw) -> int:
                return int(raw[path])

            batches = []
            for size in self._bins.get(key, []):
                b = {
                    leaf: {"count": val("batch", size, leaf, "count"), "ns": val("batch", size, leaf, "ns")}
                    for leaf in ("compute_input", "compute_infer", "compute_output")
                }
                if b["compute_infer"]["count"]:
                    batches.append({"batch_size": size, **b})
            entries.append(
                {
                    "name": entry["name"],
                    "version": entry["version"],
                    "last_inference": val("last_inference"),
                    "inference_count": val("inference_count"),
                    "execution_count": val("execution_count"),
                    "inference_stats": {
                        leaf: {"count": val(leaf, "count"), "ns": val(leaf, "ns")}
                        for leaf in entry["inference_stats"]
                    },
                    "response_stats": entry.get("response_stats", {}),
                    "batch_stats": batches,
                    "memory_usage": entry.get("memory_usage", []),
                }
            )
        return {"model_stats": entries}

    def index_doc(self) -> list[dict[str, Any]]:
        g, _ = self._position()
        elapsed = self._clock() - self._started
        rows = []
        for recorded in self._rec.frames[g % self._n]["index"]:
            state = self.faults.state(recorded.get("name", ""), elapsed)
            if state is None:
                rows.append(recorded)
                continue
            row = {"name": recorded["name"], "version": recorded.get("version", "1"), "state": state}
            if state != ModelState.READY:
                row["reason"] = "demo scenario: the model was taken out of service"
            rows.append(row)
        return rows

    # -- faults (demo/scenarios.py asks for them) ---------------------------------------

    def model_names(self) -> tuple[str, ...]:
        """The model names this recording serves."""
        names = {row["name"] for f in self._rec.frames for row in f["index"]}
        return tuple(sorted(names))

    def heal(self, model: str, *, from_seconds: float) -> None:
        """The recording's own failures of this model are not served: what it completes succeeds."""
        self._fault(model, Fault("heal", from_seconds))

    def fail_requests(self, model: str, failure_ratio: float, *, from_seconds: float) -> None:
        """That share of the model's requests fails (reason BACKEND); the rest succeed."""
        self._fault(model, Fault("fail", from_seconds, ratio=failure_ratio))

    def stall(self, model: str, *, from_seconds: float) -> None:
        """Requests keep arriving and wait in the queue (pending grows); none completes."""
        self._fault(model, Fault("stall", from_seconds))

    def set_state(self, model: str, state: str, *, from_seconds: float) -> None:
        """The model version reports `state` in the index (and, unless READY, leaves the
        statistics and /metrics, as an unloaded model does)."""
        self._fault(model, Fault("state", from_seconds, state=state))

    def queue_share(self, model: str, queue_share_ratio: float, *, from_seconds: float) -> None:
        """That share of each request's latency is spent in the queue (the rest computing)."""
        self._fault(model, Fault("queue", from_seconds, ratio=queue_share_ratio))

    def configure(self, model: str, changes: dict[str, Any], *, from_seconds: float) -> None:
        """The model's served config has these keys replaced (None removes one; an object is
        merged into the config's object of that name), as after an edit and a reload."""
        self._fault(model, Fault("config", from_seconds, config=changes))

    def _fault(self, model: str, fault: Fault) -> None:
        if model not in self.model_names():
            raise ValueError(f"the recording has no model {model!r}: {', '.join(self.model_names())}")
        with self._lock:
            self.faults.add(model, fault)

    # -- the transport ----------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        path = unquote(request.url.path).rstrip("/")
        method = request.method
        with self._lock:
            g, _ = self._position()
            frame = self._rec.frames[g % self._n]
            if path == "/metrics" and method == "GET":
                body = self.metrics_text().encode()
                return httpx.Response(
                    200, content=body, headers={"Content-Type": "text/plain; charset=utf-8"}
                )
            if path == "/v2/health/ready" and method == "GET":
                return httpx.Response(int(frame.get("health", 200)))
            if path == "/v2" and method == "GET":
                return _json(200, self._rec.header.get("metadata", {}))
            if path == "/v2/repository/index" and method == "POST":
                return _json(200, self.index_doc())
            if path == "/v2/models/stats" and method == "GET":
                doc = self.stats_doc()
                return _json(200, doc) if doc is not None else _error(400, "statistics are not available")
            parts = path.split("/")
            if (
                method == "GET"
                and len(parts) in (5, 7)
                and parts[1:3] == ["v2", "models"]
                and parts[-1] == "config"
            ):
                name = parts[3]
                configs = self._configs[g % self._n]
                version = parts[5] if len(parts) == 7 else _latest(configs, name)
                cfg = configs.get(f"{name}/{version}")
                if cfg is not None:
                    cfg = self.faults.config(name, self._clock() - self._started, cfg)
                ready = any(
                    r.get("name") == name
                    and r.get("state") == ModelState.READY
                    and r.get("version") == version
                    for r in self.index_doc()
                )
                if cfg is None or not ready:
                    return _error(400, f"Request for unknown model: '{name}' is not found")
                return _json(200, cfg)
        return _error(404, "Not Found")


def _latest(configs: dict[str, Any], name: str) -> str:
    versions = [k.split("/", 1)[1] for k in configs if k.split("/", 1)[0] == name]
    return max(versions, key=lambda v: int(v) if v.isdigit() else -1) if versions else ""


def _json(status: int, doc: Any) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )


def _error(status: int, text: str) -> httpx.Response:
    return _json(status, {"error": text})


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
