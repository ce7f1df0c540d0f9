"""config.toml → typed, validated settings.

Every setting is a field of a frozen dataclass below, with its default, a one-line description
and its allowed range in the field's metadata. The loader walks the TOML document against those
dataclasses and stops at the first thing that does not fit, with one line that names the file,
the key, the value and what is expected (`ConfigError`); the CLI prints it and exits 2. The
shipped `config.toml` is rendered from the same metadata (`render_defaults`), and a test keeps
the two identical.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

DEFAULT_CONFIG_PATH = Path("/etc/gpuwatch/config.toml")
CONFIG_ENV = "GPUWATCH_CONFIG"
DEFAULT_PORT = 9477
DEMO_SCENARIOS = (
    "gpu-lost",
    "xid-burst",
    "thermal",
    "model-failing",
    "batching",
    "healthy",
    "nvlink-degraded",
)
"""The fault scenarios `--demo` can run (defined in gpuwatch/demo/scenarios.py)."""
DEMO_NODES = ("h100", "h200x2")
"""The recorded nodes `--demo` replays (gpuwatch/demo/nvml.py, gpuwatch/demo/nvlink.py)."""


class ConfigError(ValueError):
    """A config file (or a command-line override) that gpuwatch cannot use. str() is one line."""


def _setting(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    url: bool = False,
) -> Any:
    meta = {"doc": doc, "min": minimum, "max": maximum, "choices": choices, "url": url}
    if isinstance(default, list | dict):
        factory = lambda d=default: type(d)(d)  # noqa: E731 - a fresh copy per instance
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NvmlSettings:
    interval_seconds: float = _setting(
        1.0,
        "seconds between fast NVML ticks (utilization, memory, power, clocks, processes)",
        minimum=0.1,
        maximum=3600,
    )
    slow_interval_seconds: float = _setting(
        5.0,
        "seconds between slow NVML reads (PCIe throughput, energy, GPM, per-process use)",
        minimum=0.5,
        maximum=3600,
    )
    energy_interval_seconds: float = _setting(
        30.0,
        "seconds between reads of the energy counter (2.5–4 ms of CPU per read on an H100)",
        minimum=1,
        maximum=86400,
    )
    call_timeout_seconds: float = _setting(
        2.0,
        "a GPU whose NVML call has not returned after this long is reported hung",
        minimum=0.05,
        maximum=600,
    )
    retry_max_seconds: float = _setting(
        60.0,
        "longest wait between retries of a failed NVML init or a lost GPU (backoff cap)",
        minimum=1,
        maximum=86400,
    )
    gpm: bool = _setting(True, "read GPM activity metrics (tensor, DRAM, SM occupancy) where supported")
    process_utilization: bool = _setting(True, "read per-process SM and memory utilization")


@dataclass(frozen=True)
class TritonServerSettings:
    name: str = _setting("local", "short name shown in tables and used as the `server` label")
    url: str = _setting("http://127.0.0.1:8000", "Triton's HTTP API base URL", url=True)
    metrics_url: str = _setting("http://127.0.0.1:8002/metrics", "Triton's Prometheus metrics URL", url=True)
    headers: dict[str, str] = _setting({}, "extra HTTP headers for the API, e.g. for --http-restricted-api")


@dataclass(frozen=True)
class TritonSettings:
    enabled: bool = _setting(True, "poll Triton Inference Servers")
    interval_seconds: float = _setting(1.0, "seconds between polls of each server", minimum=0.1, maximum=3600)
    timeout_seconds: float = _setting(
        1.0, "deadline for one whole poll of one server", minimum=0.05, maximum=60
    )
    max_response_bytes: int = _setting(
        8_388_608, "responses larger than this are refused", minimum=4096, maximum=1_073_741_824
    )
    config_refresh_seconds: float = _setting(
        60.0,
        "re-read each model's effective config this often (instance_group can change)",
        minimum=1,
        maximum=86400,
    )
    servers: list[TritonServerSettings] = _setting(
        [], "servers to poll; empty means one on localhost:8000/8002, silently absent when idle"
    )


@dataclass(frozen=True)
class DaemonSettings:
    listen: str = _setting(f"127.0.0.1:{DEFAULT_PORT}", "HOST:PORT for /metrics and /api/v1")
    state_dir: str = _setting("/var/lib/gpuwatch", "directory for the database")
    database: str = _setting("", "database file; empty means STATE_DIR/gpuwatch.db")
    allow_unauthenticated_remote: bool = _setting(
        False, "allow listening on a non-loopback address without authentication"
    )
    tls_cert_file: str = _setting("", "PEM certificate; with tls_key_file, serve HTTPS")
    tls_key_file: str = _setting("", "PEM private key for tls_cert_file")
    bearer_token_file: str = _setting("", "file holding a token clients send as Authorization: Bearer")
    basic_auth_file: str = _setting("", "file of USER:BCRYPT_HASH lines for HTTP basic auth")
    max_connections: int = _setting(
        64, "connections served at once; more get HTTP 503", minimum=1, maximum=10000
    )
    request_timeout_seconds: float = _setting(
        10.0, "a client slower than this is disconnected", minimum=0.1, maximum=600
    )
    log_level: str = _setting("info", "log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class MetricsSettings:
    dcgm_exporter_names: bool = _setting(
        False,
        "also serve dcgm-exporter's DCGM_FI_DEV_*/DCGM_FI_PROF_* names, units and labels (docs/dcgm.md)",
    )


@dataclass(frozen=True)
class StoreSettings:
    retention: str = _setting(
        "1s:24h,1m:30d,1h:1y", "retention tiers RESOLUTION:KEEP, finest first (s, m, h, d, y)"
    )
    size_budget_bytes: int = _setting(
        2_147_483_648,
        "largest database size; the oldest raw data is purged first to stay under",
        minimum=1_048_576,
        maximum=1 << 50,
    )
    purge_batch_rows: int = _setting(
        5000, "rows deleted per purge step, so no step blocks writes", minimum=100, maximum=1_000_000
    )
    write_queue_max: int = _setting(
        3600, "snapshots held in memory while the database cannot be written", minimum=1, maximum=1_000_000
    )
    write_queue_max_bytes: int = _setting(
        268_435_456,
        "memory those held snapshots may take (estimated); the oldest are dropped beyond either bound",
        minimum=1_048_576,
        maximum=1 << 40,
    )


@dataclass(frozen=True)
class TopSettings:
    refresh_seconds: float = _setting(1.0, "seconds between screen refreshes", minimum=0.1, maximum=60)
    connect: list[str] = _setting(
        [],
        "daemon URLs (several: the cluster view); empty: the local daemon if it answers, else in-process",
    )
    token_file: str = _setting("", "bearer token file for daemons that require authentication")
    ca_file: str = _setting("", "PEM CA bundle that signs https daemons' certificates; empty: the system's")
    no_color: bool = _setting(False, "monochrome (also set by NO_COLOR or --no-color)")
    prometheus: str = _setting(
        "", "Prometheus server URL for the fleet view (top --prometheus); empty: read the daemons"
    )
    prometheus_selector: str = _setting(
        'job="gpuwatch"',
        'label matchers picking the gpuwatch targets in Prometheus, e.g. job="gpuwatch",cluster="a"',
    )
    prometheus_token_file: str = _setting("", "bearer token file for Prometheus")
    prometheus_basic_auth_file: str = _setting("", "file holding USER:PASSWORD for Prometheus's basic auth")
    prometheus_ca_file: str = _setting("", "PEM CA bundle for an https Prometheus; empty: the system's")


@dataclass(frozen=True)
class DemoSettings:
    node: str = _setting(
        "h100",
        "recorded node for --demo: h100 (an H100 load trace as [demo] gpus GPUs) or h200x2 "
        "(two NVLinked H200s under an NCCL all-reduce; [demo] gpus does not apply)",
        choices=DEMO_NODES,
    )
    gpus: int = _setting(4, "recorded GPUs in --demo", minimum=1, maximum=64)
    scenario: str = _setting(
        "",
        "fault scenario for --demo: gpu-lost, xid-burst, thermal, model-failing, batching, healthy, "
        "nvlink-degraded, or empty",
        choices=("", *DEMO_SCENARIOS),
    )
    triton: bool = _setting(True, "replay recorded Triton models beside the GPUs in --demo")
    mig: bool = _setting(True, "show the last recorded GPU in MIG mode in --demo (with 2 GPUs or more)")


DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
CRI_SOCKETS = ("/run/containerd/containerd.sock", "/var/run/crio/crio.sock")
"""containerd's and CRI-O's CRI sockets, in the order an empty `cri_socket` tries them."""


@dataclass(frozen=True)
class KubernetesSettings:
    pod_resources_socket: str = _setting(
        DEFAULT_POD_RESOURCES_SOCKET,
        "the kubelet's PodResources socket (GPU → pod); used when it exists, in --demo only when "
        "another path is named; empty: off",
    )
    cri_socket: str = _setting(
        "",
        "the container runtime's CRI socket (process → pod names); empty: the first of containerd's "
        "and CRI-O's that exists (never in --demo); off: none",
    )
    timeout_seconds: float = _setting(2.0, "deadline for one call on either socket", minimum=0.05, maximum=60)
    max_reply_bytes: int = _setting(
        16_777_216,
        "largest reply accepted (gRPC's own default of 4 MiB is too small on big nodes)",
        minimum=65_536,
        maximum=1_073_741_824,
    )
    refresh_seconds: float = _setting(
        30.0,
        "re-list pods and containers at least this often; at once when a GPU process is in a "
        "container not yet known",
        minimum=1,
        maximum=86400,
    )

    def pod_resources_path(self, *, demo: bool) -> str | None:
        """The PodResources socket to use: None when off (or the default path in --demo)."""
        path = self.pod_resources_socket
        if not path or (demo and path == DEFAULT_POD_RESOURCES_SOCKET):
            return None
        return path

    def cri_path(self, *, demo: bool, exists: Callable[[str], bool] = os.path.exists) -> str | None:
        """The CRI socket to use: the named one, else (not in --demo) the first that exists."""
        if self.cri_socket == "off":
            return None
        if self.cri_socket:
            return self.cri_socket
        if demo:
            return None
        return next((p for p in CRI_SOCKETS if exists(p)), None)


@dataclass(frozen=True)
class Settings:
    nvml: NvmlSettings = field(default_factory=NvmlSettings)
    triton: TritonSettings = field(default_factory=TritonSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    top: TopSettings = field(default_factory=TopSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)

    @property
    def database_path(self) -> Path:
        if self.daemon.database:
            return Path(self.daemon.database)
        return Path(self.daemon.state_dir) / "gpuwatch.db"

    def triton_servers(self) -> tuple[tuple[TritonServerSettings, ...], bool]:
        """The servers to poll, and whether they are the implicit default (absent is quiet)."""
        if self.triton.servers:
            return tuple(self.triton.servers), False
        return (TritonServerSettings(),), True


def http_url_problem(url: str) -> str | None:
    """What makes `url` unusable as an http(s) URL gpuwatch fetches, or None when it is fine."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError: not a number, or out of range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return f"the scheme is {parts.scheme or 'missing'!r}"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    return None


def triton_server_from_url(spec: str) -> TritonServerSettings:
    """`--triton URL[,METRICS_URL]` → a server. Without METRICS_URL the metrics URL is Triton's
    default layout: the same host, the HTTP port + 2 (8000 → 8002), path /metrics. The server's
    name is HOST:PORT of the HTTP URL."""
    url, _, metrics_url = (part.strip() for part in spec.partition(","))
    if "://" not in url:
        url = "http://" + url
    problem = http_url_problem(url)
    if problem is not None:
        raise ConfigError(
            f"--triton {spec!r}: expected Triton's HTTP URL, like http://HOST:8000 "
            f"(optionally followed by ,METRICS_URL): {problem}"
        )
    parts = urlsplit(url)
    port = parts.port
    assert parts.hostname is not None  # http_url_problem checked it
    http_port = port if port is not None else (443 if parts.scheme == "https" else 80)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if metrics_url:
        if "://" not in metrics_url:
            metrics_url = "http://" + metrics_url
        problem = http_url_problem(metrics_url)
        if problem is not None:
            raise ConfigError(f"--triton {spec!r}: the metrics URL {metrics_url!r}: {problem}")
    else:
        metrics_url = f"http://{host}:{http_port + 2}/metrics"
    return TritonServerSettings(
        name=f"{host}:{http_port}", url=url.rstrip("/"), metrics_url=metrics_url, headers={}
    )


# --------------------------------------------------------------------------- files a setting names

SECRET_FILE_MAX_BYTES = 65_536
"""The largest token, password or certificate file read: a real one is a few KiB; `/dev/zero`
named by mistake must not be read for ever."""


class SettingFileError(ValueError):
    """A file a setting names that is not a small regular file; str() says what it is instead."""


def read_setting_file(path: Path, limit_bytes: int = SECRET_FILE_MAX_BYTES) -> bytes:
    """The bytes of a small regular file. Opened without blocking (a FIFO would hang the start)
    and read at most `limit_bytes` + 1 (a device would be read without end). Raises `OSError`
    (no such file, permission) or `SettingFileError` (not a regular file, too big)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device"
            raise SettingFileError(f"is {kind}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit_bytes:
            chunk = os.read(fd, limit_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit_bytes:
            raise SettingFileError(f"is larger than {limit_bytes} bytes: not a token, password or key file")
        return b"".join(chunks)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- loading


def default_path() -> Path | None:
    """The config file to read when none is named: $GPUWATCH_CONFIG, else /etc/gpuwatch."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load(path: Path | str | None) -> Settings:
    """Read and validate a config file; `None` gives the defaults."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (create it, or drop --config)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(doc, str(path))


def parse(doc: dict[str, Any], source: str = "config") -> Settings:
    settings: Settings = _build(Settings, doc, source, "")
    return settings


def _build(cls: type[Any], table: dict[str, Any], source: str, prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        where = _where(prefix, key)
        if key not in known:
            expected = ", ".join(sorted(known))
            raise ConfigError(f"{source}: unknown key {where} = {_show(value)}: expected one of {expected}")
        kwargs[key] = _convert(hints[key], value, known[key], source, where)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, f: dataclasses.Field[Any], source: str, where: str) -> Any:
    meta = f.metadata
    doc = meta.get("doc", "")

    def fail(expected: str) -> ConfigError:
        why = f" ({doc})" if doc else ""
        return ConfigError(f"{source}: {where} = {_show(value)}: expected {expected}{why}")

    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail("a table")
        return _build(tp, value, source, where)
    origin = get_origin(tp)
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise fail("a list")
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            out = []
            for i, v in enumerate(value):
                if not isinstance(v, dict):
                    raise ConfigError(f"{source}: {where}[{i}] = {_show(v)}: expected a table")
                out.append(_build(item, v, source, f"{where}[{i}]"))
            return out
        if not all(isinstance(v, str) for v in value):
            raise fail("a list of strings")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise fail("a table of strings")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp in (int, float):
        ok_types: tuple[type, ...] = (int,) if tp is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            raise fail("an integer" if tp is int else "a number")
        lo, hi = meta.get("min"), meta.get("max")
        if isinstance(value, float) and not math.isfinite(value):  # nan fails no bound
            raise fail(f"a number from {_num(lo)} to {_num(hi)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise fail(f"a number from {_num(lo)} to {_num(hi)}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise fail("one of " + ", ".join(c or '"" (none)' for c in choices))
        if meta.get("url") and http_url_problem(value) is not None:
            raise fail(f"an http:// or https:// URL with a host ({http_url_problem(value)})")
        return value
    raise TypeError(f"unsupported setting type {tp!r}")  # a bug in this file, not user input


def _where(prefix: str, key: str) -> str:
    if not prefix:
        return f"[{key}]"  # a section
    if " " not in prefix:
        return f"{prefix} {key}"  # a key of a section: "[nvml] interval_seconds"
    return f"{prefix}.{key}"  # deeper: "[triton] servers[0].url"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{…}"
    text = (
        repr(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _num(x: float | None) -> str:
    if x is None:
        return "∞"
    return str(int(x)) if float(x).is_integer() else str(x)


# --------------------------------------------------------------------------- rendering


def render_defaults() -> str:
    """The shipped config.toml: every setting, its default and a one-line comment."""
    lines = [
        "# gpuwatch configuration. Every setting is shown with its default.",
        "# Check a file with: gpuwatch config check PATH",
        "",
    ]
    for section in dataclasses.fields(Settings):
        cls = get_type_hints(Settings)[section.name]
        lines.append(f"[{section.name}]")
        example_tables: list[str] = []
        for f in dataclasses.fields(cls):
            default = _default(f)
            item_tp = get_args(get_type_hints(cls)[f.name])
            lines.append(f"# {f.metadata['doc']}")
            if (
                isinstance(default, list)
                and item_tp
                and isinstance(item_tp[0], type)
                and dataclasses.is_dataclass(item_tp[0])
            ):
                lines.append(f"{f.name} = []")
                example_tables.append(_render_example_table(section.name, f.name, item_tp[0]))
            else:
                lines.append(f"{f.name} = {_toml(default)}")
        lines.extend(example_tables)
        lines.append("")
    return "\n".join(lines)


def _render_example_table(section: str, name: str, cls: type[Any]) -> str:
    out = [
        "# A server is one [[triton.servers]] table (these lines replace `servers = []`);",
        "# repeat the table for each server:",
        f"# [[{section}.{name}]]",
    ]
    for f in dataclasses.fields(cls):
        default = _default(f)
        out.append(f"# {f.name} = {_toml(default)}    # {f.metadata['doc']}")
    return "\n".join(out)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    factory: Any = f.default_factory
    return factory()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {value!r}")
