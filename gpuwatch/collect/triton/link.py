"""Pure links between Triton and the rest of the snapshot: processes → servers, UUIDs → GPUs.

Place in the flow: `gpuwatch.collect.joins.join`, called by the engine for each snapshot, uses
`tritonserver_links` and `mark_processes` to say which `tritonserver` process in the NVML
process list is which configured server, and `resolve_gpu_indexes` to turn each model's
`gpu_uuids` (Triton's `gpu_uuid` labels) into NVML indexes over the GPUs NVML knows, so the
Triton collector never calls NVML and never sees the process list.

How a process is matched to a server: a process is a Triton server when its name, or the first
word of its command line, is `tritonserver`. Its HTTP port is the `--http-port` argument
(Triton's default 8000), and it is matched to the configured server on this host with that
port. A server in a container often publishes another port (`-p 8100:8000`): when exactly one
configured server is on this host, Triton processes that match no port are linked to it.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cache
from urllib.parse import urlsplit

from gpuwatch import model

TRITON_DEFAULT_HTTP_PORT = 8000
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "ip6-localhost"})


def is_tritonserver(process: model.ProcessSample) -> bool:
    if process.name == "tritonserver":
        return True
    words = _words(process.command)
    return bool(words) and words[0].rsplit("/", 1)[-1] == "tritonserver"


def http_port(command: str | None) -> int:
    """The HTTP port a tritonserver command line listens on."""
    words = _words(command)
    for i, word in enumerate(words):
        if word.startswith("--http-port="):
            value = word.split("=", 1)[1]
        elif word == "--http-port" and i + 1 < len(words):
            value = words[i + 1]
        else:
            continue
        if value.isdigit():
            return int(value)
    return TRITON_DEFAULT_HTTP_PORT


def url_port(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is not None:
        return port
    return 443 if parts.scheme == "https" else 80


def is_local_url(url: str, local_names: frozenset[str] | None = None) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.startswith("127.") or host in (local_names or _host_names())


def tritonserver_links(
    processes: Iterable[model.ProcessSample],
    servers: Sequence[tuple[str, str]],
    local_names: frozenset[str] | None = None,
) -> dict[int, str]:
    """PID → server name for every tritonserver process that is one of `servers` (name, url)."""
    local = [(name, url_port(url)) for name, url in servers if is_local_url(url, local_names)]
    if not local:
        return {}
    by_port = {port: name for name, port in local if port is not None}
    links: dict[int, str] = {}
    for p in processes:
        if p.pid in links or not is_tritonserver(p):
            continue
        name = by_port.get(http_port(p.command))
        if name is None and len(local) == 1:
            name = local[0][0]
        if name is not None:
            links[p.pid] = name
    return links


def mark_processes(
    processes: tuple[model.ProcessSample, ...], links: dict[int, str]
) -> tuple[model.ProcessSample, ...]:
    """Each tritonserver process marked with its server, and each child of one (a python backend
    stub, which does a python model's GPU work and holds most of its memory) with the server and,
    from its command line, the model and instance it runs."""
    if not links:
        return processes
    out = []
    for p in processes:
        if p.pid in links:
            out.append(replace(p, triton_server=links[p.pid]))
        elif p.parent_pid in links:
            model_name, instance = stub_model(p.command)
            server = links[p.parent_pid]
            out.append(replace(p, triton_server=server, triton_model=model_name, triton_instance=instance))
        else:
            out.append(p)
    return tuple(out)


def stub_model(command: str | None) -> tuple[str | None, str | None]:
    """(model, instance) from a python backend stub's command line, as Triton 2.51 starts it:
    `triton_python_backend_stub MODELS/NAME/VERSION/model.py SHM_REGION SIZE GROWTH PARENT_PID
    BACKEND_DIR IPC_HANDLE INSTANCE_NAME EXEC_ENV`; (None, None) for another command."""
    words = (command or "").split()
    if not words or not words[0].endswith("triton_python_backend_stub") or len(words) < 2:
        return None, None
    parts = words[1].split("/")
    name = parts[-3] if len(parts) >= 3 and parts[-1].endswith(".py") and parts[-2].isdigit() else None
    instance = words[8] if len(words) > 8 else None
    return name, instance


def resolve_gpu_indexes(
    servers: tuple[model.TritonServerStatus, ...], devices: Iterable[model.GpuInfo]
) -> tuple[model.TritonServerStatus, ...]:
    """Each model's `gpu_uuids` → NVML indexes. Where a model has no UUID that NVML knows, its
    `gpu_indexes` stay as the collector set them (instance_group `gpus`)."""
    index_of = {normalize_uuid(d.uuid): d.index for d in devices}
    if not index_of:
        return servers
    out = []
    for server in servers:
        models = []
        changed = False
        for stats in server.models:
            found = tuple(
                sorted({index_of[u] for u in map(normalize_uuid, stats.gpu_uuids) if u in index_of})
            )
            if found and found != stats.gpu_indexes:
                stats = replace(stats, gpu_indexes=found)  # noqa: PLW2901 - the linked copy replaces it
                changed = True
            models.append(stats)
        out.append(replace(server, models=tuple(models)) if changed else server)
    return tuple(out)


def normalize_uuid(uuid: str) -> str:
    """NVML says "GPU-8c4f…"; Triton's label is the same text. Compare without case or prefix."""
    text = uuid.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def _words(command: str | None) -> list[str]:
    if not command:
        return []
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


@cache
def _host_names() -> frozenset[str]:
    # Only the name the kernel knows: a DNS lookup here could stall the engine's tick.
    return frozenset({socket.gethostname().lower()})
