"""A real Triton Inference Server 2.51 from the nvidia-pytriton wheel, for tests, benchmarks and
recordings (see ../shared/TRITON.md).

`write_repository` lays out Python-backend models from `ModelSpec`s (one generic `model.py`
whose behaviour comes from the model's config parameters); `start_server` copies the Python
backend next to its stub, starts `tritonserver` on free loopback ports and waits until it is
ready; `TritonProcess.stop()` / `.kill()` end it by PID and remove the shared-memory regions it
left behind. Nothing here imports gpuwatch: it is the thing gpuwatch is tested against.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"

# One model.py for every test model. Parameters (config.pbtxt `parameters`) choose behaviour:
#   sleep_ms      time one execution takes (makes requests queue, so batches form)
#   raise_marker  "1": raise in execute when a request's INPUT0[0] is -1 (the whole batch
#                 then fails, so the failing test model runs without batching for exact counts),
#                 and answer with an error response (no raise) when it is -2
#   fail_init     "1": raise in initialize (the model never becomes READY)
#   init_sleep_ms time initialize takes (a slow model load)
MODEL_PY = """\
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if params.get("fail_init") == "1":
            raise RuntimeError("fail_init is set: this model refuses to load")
        time.sleep(float(params.get("init_sleep_ms", "0")) / 1000.0)
        self.sleep_s = float(params.get("sleep_ms", "0")) / 1000.0
        self.raise_marker = params.get("raise_marker") == "1"

    def execute(self, requests):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            marker = data.reshape(-1, data.shape[-1])[:, 0]
            if self.raise_marker and (marker == -1).any():
                raise pb_utils.TritonModelException("marker -1: this batch fails on purpose")
            if self.raise_marker and (marker == -2).any():
                error = pb_utils.TritonError("marker -2: an error response, not a raise")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            out = pb_utils.Tensor("OUTPUT0", (data * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
"""


@dataclass(frozen=True)
class ModelSpec:
    """One Python-backend model with INPUT0 → OUTPUT0 (FP32, [4]), or an ensemble of steps."""

    name: str
    max_batch_size: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int | None = None
    """Set (even to 0) for dynamic batching."""
    instances: int = 1
    sleep_ms: float = 0.0
    raise_marker: bool = False
    fail_init: bool = False
    steps: tuple[str, ...] = ()
    """For an ensemble: the composing models, each INPUT0 → OUTPUT0, chained in order."""
    response_cache: bool = False
    init_sleep_ms: float = 0.0
    """Time `initialize` takes: a model load slower than a poll's deadline."""

    def config_pbtxt(self) -> str:
        lines = [f'name: "{self.name}"']
        io = (
            'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
            'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]'
        )
        lines.append(f"max_batch_size: {self.max_batch_size}")
        lines.append(io)
        if self.steps:
            lines.append('platform: "ensemble"')
            steps = []
            for i, step in enumerate(self.steps):
                src = "INPUT0" if i == 0 else f"t{i}"
                dst = "OUTPUT0" if i == len(self.steps) - 1 else f"t{i + 1}"
                steps.append(
                    f'{{ model_name: "{step}" model_version: -1 '
                    f'input_map {{ key: "INPUT0" value: "{src}" }} '
                    f'output_map {{ key: "OUTPUT0" value: "{dst}" }} }}'
                )
            lines.append("ensemble_scheduling { step [ " + ", ".join(steps) + " ] }")
            return "\n".join(lines) + "\n"
        lines.append('backend: "python"')
        if self.max_queue_delay_us is not None:
            preferred = ", ".join(str(b) for b in self.preferred_batch_sizes)
            pref = f"preferred_batch_size: [ {preferred} ] " if preferred else ""
            lines.append(
                f"dynamic_batching {{ {pref}max_queue_delay_microseconds: {self.max_queue_delay_us} }}"
            )
        lines.append(f"instance_group [ {{ count: {self.instances} kind: KIND_CPU }} ]")
        params = {"sleep_ms": str(self.sleep_ms)}
        if self.raise_marker:
            params["raise_marker"] = "1"
        if self.fail_init:
            params["fail_init"] = "1"
        if self.init_sleep_ms:
            params["init_sleep_ms"] = str(self.init_sleep_ms)
        for key, value in params.items():
            lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
        if self.response_cache:
            lines.append("response_cache { enable: true }")
        return "\n".join(lines) + "\n"


# The models the issue names: dynamically batched with 2 instances and preferred sizes; one
# that raises for a known share of requests; one without batching; ensembles over two steps
# (one of them through the failing model); one that fails to load; one for unload/load and
# config-override reloads; one with the response cache.
TEST_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "resnet",
        max_batch_size=32,
        preferred_batch_sizes=(4, 8),
        max_queue_delay_us=2000,
        instances=2,
        sleep_ms=10,
    ),
    ModelSpec("prep", max_batch_size=8, max_queue_delay_us=500, sleep_ms=1),
    ModelSpec("bert_raise", max_batch_size=8, raise_marker=True, sleep_ms=1),
    ModelSpec("plain", max_batch_size=0, sleep_ms=1),
    ModelSpec("pipeline", max_batch_size=8, steps=("prep", "resnet")),
    ModelSpec("pipeline_raise", max_batch_size=8, steps=("prep", "bert_raise")),
    ModelSpec("cycle", max_batch_size=16, max_queue_delay_us=1000, sleep_ms=1),
    ModelSpec("cached", max_batch_size=8, sleep_ms=1, response_cache=True),
    ModelSpec("broken", max_batch_size=4, fail_init=True),
)


def pytriton_root() -> Path | None:
    """Where the nvidia-pytriton wheel put its tritonserver, or None when it is not installed."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    return root if (root / "bin" / "tritonserver").exists() else None


def write_repository(root: Path, models: Iterable[ModelSpec]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for spec in models:
        folder = root / spec.name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        (folder / "config.pbtxt").write_text(spec.config_pbtxt())
        if not spec.steps:
            (folder / "1" / "model.py").write_text(MODEL_PY)
    return root


def _backend_dir(workdir: Path, triton: Path) -> Path:
    """The Python backend with the 3.11 stub beside libtriton_python.so (where it is looked for)."""
    backends = workdir / "backends"
    python = backends / "python"
    if not (python / "triton_python_backend_stub").exists():
        python.mkdir(parents=True, exist_ok=True)
        for item in (triton / "backends" / "python").iterdir():
            if item.is_file():
                shutil.copy2(item, python / item.name)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy2(triton / "python_backend_stubs" / version / "triton_python_backend_stub", python)
    return backends


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def shm_regions() -> set[str]:
    try:
        return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(SHM_PREFIX)}
    except OSError:
        return set()


def _regions_in_use() -> set[str]:
    """Shared-memory regions some process we can see has mapped."""
    used: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            maps = (proc / "maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            if SHM_PREFIX in line:
                used.add(line.rsplit("/", 1)[-1].split()[0])
    return used


@dataclass
class TritonProcess:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    repository: Path
    workdir: Path
    log_path: Path
    args: list[str]
    env: dict[str, str]
    regions: set[str] = field(default_factory=set)
    """Shared-memory regions that appeared while this server ran: only these are cleaned up."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID (3–5 s with --exit-timeout-secs=5), SIGKILL if it will not go."""
        stubs = self._stubs()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _reap(stubs)
        self.cleanup_shm()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to a monitor."""
        stubs = self._stubs()
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)
        _reap(stubs)

    def _stubs(self) -> list[psutil.Process]:
        """The Python backend's stub processes this server started."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def restart(self, ready_timeout: float = 60.0) -> None:
        """Start the same server again on the same ports (after stop() or kill())."""
        self.kill()
        self.cleanup_shm(wait_seconds=2.0)
        before = shm_regions()
        self.proc = _spawn(self.args, self.env, self.log_path)
        _wait_ready(self, ready_timeout)
        self.regions |= shm_regions() - before

    def cleanup_shm(self, wait_seconds: float = 5.0) -> None:
        """Remove this server's regions once its stubs (which may outlive a SIGKILL) let go."""
        deadline = time.monotonic() + wait_seconds
        while True:
            in_use = _regions_in_use()
            for name in list(self.regions):
                if name not in in_use:
                    (SHM_DIR / name).unlink(missing_ok=True)
                    self.regions.discard(name)
            if not self.regions or time.monotonic() > deadline:
                return
            time.sleep(0.2)


def _reap(stubs: list[psutil.Process], wait_seconds: float = 5.0) -> None:
    """Stubs leave on their own when their server is gone; one that was left behind (an
    instance stuck unloading, seen after a config-override reload) is killed by its PID."""
    _, alive = psutil.wait_procs(stubs, timeout=wait_seconds)
    for stub in alive:
        with contextlib.suppress(psutil.Error):
            stub.kill()
    psutil.wait_procs(alive, timeout=5)


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_ready(server: TritonProcess, timeout: float, load: Sequence[str] = ("*",)) -> None:
    """Live, and every model it loads at start READY or UNAVAILABLE (the others never load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"tritonserver exited with {server.proc.returncode}:\n{server.log()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/v2/health/live", timeout=1.0).status_code == 200:
                # Live is enough: with a model that fails to load the server is never "ready".
                index = httpx.post(f"{server.url}/v2/repository/index", json={"ready": False}, timeout=2.0)
                states = [m.get("state") for m in index.json() if "*" in load or m.get("name") in load]
                if states and all(s in ("READY", "UNAVAILABLE") for s in states):
                    return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"tritonserver not ready after {timeout:.0f} s:\n{server.log()[-3000:]}")


def start_server(
    repository: Path,
    workdir: Path,
    *,
    load: Sequence[str] = ("*",),
    metrics_config: Sequence[str] = (),
    cache_bytes: int | None = 1 << 20,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 60.0,
) -> TritonProcess:
    """Start tritonserver (explicit model control, `load` loaded at start) and wait for it."""
    triton = pytriton_root()
    if triton is None:
        raise RuntimeError("nvidia-pytriton is not installed: pip install nvidia-pytriton==0.7.0")
    workdir.mkdir(parents=True, exist_ok=True)
    backends = _backend_dir(workdir, triton)
    http, grpc, metrics = free_ports(3)
    libs = triton.parent.parent / "nvidia_pytriton.libs"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{libs}:{env['LD_LIBRARY_PATH']}" if env.get("LD_LIBRARY_PATH") else str(libs)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    args = [
        str(triton / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
        "--exit-timeout-secs=5",
        "--model-control-mode=explicit",
        "--exit-on-error=false",
        "--strict-readiness=false",
        "--log-verbose=0",
    ]
    args += [f"--load-model={name}" for name in load]
    args += [f"--metrics-config={item}" for item in metrics_config]
    if cache_bytes:
        args.append(f"--cache-directory={triton / 'caches'}")
        args.append(f"--cache-config=local,size={cache_bytes}")
    args += list(extra_args)
    log_path = workdir / f"tritonserver-{http}.log"
    before = shm_regions()
    server = TritonProcess(
        _spawn(args, env, log_path), http, grpc, metrics, repository, workdir, log_path, args, env
    )
    try:
        _wait_ready(server, ready_timeout, load)
    finally:
        server.regions |= shm_regions() - before
    return server
