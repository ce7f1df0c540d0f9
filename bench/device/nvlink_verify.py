"""Verify gpuwatch's NVLink and topology figures on real GPUs against nvidia-smi.

On two (or more) NVLinked GPUs, under an NCCL all-reduce between GPUs 0 and 1 (torch.distributed,
one process a GPU, NVLink multicast off: NCCL_NVLS_ENABLE=0 and friends stay set):
- per link and per GPU, gpuwatch's NVLink throughput (the real collector's two slow reads
  `--window` seconds apart) beside `nvidia-smi nvlink -gt d` read at the same two moments (its
  per-link Data Tx/Rx KiB counters): within 5 %;
- the topology matrix (`gpuwatch topo`'s) beside `nvidia-smi topo -m`: equal cell for cell;
- the link count and each link's state beside `nvidia-smi nvlink --status`.
On a single GPU without NVLink: no links, and the NVLink rates None (never 0), GPM's too.

Prints one JSON report (and writes it to --out DIR/nvlink_verify.json); exit 1 when a check fails.

Usage, from the repository root:
  python3 bench/device/nvlink_verify.py --out DIR            # on the GPU machine (1 or 2+ GPUs)
  python3 bench/device/nvlink_verify.py --demo h100          # the single-GPU path, recorded
  python3 bench/device/nvlink_verify.py --demo h200x2        # the pair path, recorded, no nvidia-smi
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from gpuwatch import model  # noqa: E402
from gpuwatch.collect.host import HostProcesses  # noqa: E402
from gpuwatch.collect.nvml.collector import NvmlCollector  # noqa: E402
from gpuwatch.config import NvmlSettings  # noqa: E402
from gpuwatch.text import topology as topology_text  # noqa: E402

TOLERANCE = 0.05
KIB = 1024
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
"""Kept set for the all-reduce and everything it starts (the device machines' rule)."""

ALL_REDUCE = textwrap.dedent(
    """
    import os, sys, time, torch, torch.distributed as dist
    rank = int(os.environ["RANK"]); torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=2)
    x = torch.ones(int(sys.argv[1]) * 1024 * 1024 // 4, device="cuda")
    for _ in range(5):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    if rank == 0:
        open(sys.argv[3], "w").write("warm")
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        for _ in range(10):
            dist.all_reduce(x)
        torch.cuda.synchronize()
    dist.destroy_process_group()
    """
)


def smi(*args: str) -> str | None:
    """nvidia-smi's output, or None where there is no nvidia-smi (the demo)."""
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, check=False, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def smi_counters(text: str | None) -> dict[tuple[int, int], tuple[int, int]]:
    """`nvidia-smi nvlink -gt d` → (gpu, link) → (tx KiB, rx KiB)."""
    out: dict[tuple[int, int], list[int]] = {}
    gpu = -1
    for line in (text or "").splitlines():
        head = re.match(r"GPU (\d+):", line)
        if head:
            gpu = int(head.group(1))
            continue
        m = re.search(r"Link (\d+): Data (Tx|Rx): (\d+) KiB", line)
        if m:
            pair = out.setdefault((gpu, int(m.group(1))), [0, 0])
            pair[0 if m.group(2) == "Tx" else 1] = int(m.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


def smi_status(text: str | None) -> dict[int, dict[int, str]]:
    """`nvidia-smi nvlink --status` → gpu → link → "26.562 GB/s" or "inactive"."""
    out: dict[int, dict[int, str]] = {}
    gpu = -1
    for line in (text or "").splitlines():
        head = re.match(r"GPU (\d+):", line)
        if head:
            gpu = int(head.group(1))
            out[gpu] = {}
            continue
        m = re.search(r"Link (\d+): (.*)$", line)
        if m and gpu >= 0:
            out[gpu][int(m.group(1))] = "inactive" if "inactive" in m.group(2).lower() else m.group(2).strip()
    return out


def smi_matrix(text: str | None) -> list[list[str]]:
    """The GPU rows of `nvidia-smi topo -m`, as cells (the header and legend left out)."""
    rows = []
    for line in ANSI.sub("", text or "").splitlines():
        if re.match(r"GPU\d+\t", line):
            rows.append([c.strip() for c in line.split("\t")])
    return rows


def open_collector(demo: str | None) -> tuple[NvmlCollector, Any]:
    settings = NvmlSettings(interval_seconds=1.0, slow_interval_seconds=1.0, call_timeout_seconds=10.0)
    if demo is None:
        import pynvml

        return NvmlCollector(pynvml, settings, HostProcesses(), source_name="nvml"), None
    from gpuwatch.demo.nvlink import RecordedNvlinkNode
    from gpuwatch.demo.nvml import RecordedNvml
    from gpuwatch.demo.processes import RecordedProcesses

    recorded = RecordedNvlinkNode() if demo == "h200x2" else RecordedNvml(1)
    return NvmlCollector(
        recorded, settings, RecordedProcesses(recorded.host_processes()), source_name="recorded"
    ), recorded


def read(collector: NvmlCollector) -> model.Snapshot:
    collector.poll_fast()
    collector.poll_slow()
    view = collector.view()
    return model.Snapshot(time.time(), view.node, view.devices, view.gpus, topology=view.topology)


def single_gpu_checks(snapshot: model.Snapshot, status: str | None) -> dict[str, Any]:
    """A GPU without NVLink: no links, no rates, never 0."""
    checks: dict[str, Any] = {}
    for g, info in zip(snapshot.gpus, snapshot.devices, strict=True):
        gpm = g.gpm
        checks[f"gpu{g.index}"] = {
            "link_count": info.nvlink_link_count,
            "links": len(g.nvlinks),
            "nvlink_tx_bytes_per_second": g.nvlink_tx_bytes_per_second,
            "nvlink_rx_bytes_per_second": g.nvlink_rx_bytes_per_second,
            "gpm_nvlink_tx_bytes_per_second": None if gpm is None else gpm.nvlink_tx_bytes_per_second,
            "gpm_present": gpm is not None,
            "nvidia_smi_links": len(smi_status(status).get(g.index, {})) if status is not None else None,
            "ok": (
                not g.nvlinks
                and not info.nvlink_link_count
                and g.nvlink_tx_bytes_per_second is None
                and g.nvlink_rx_bytes_per_second is None
                and (
                    gpm is None
                    or (gpm.nvlink_tx_bytes_per_second is None and gpm.nvlink_rx_bytes_per_second is None)
                )
            ),
        }
    return checks


def within(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return False
    if theirs < 1e6:  # idle: both near nothing
        return abs(ours - theirs) < 1e6
    return abs(ours - theirs) <= TOLERANCE * theirs


def start_all_reduce(seconds: float, size_mib: int, mark: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **NO_MULTICAST, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"}
    script = Path(tempfile.mkdtemp()) / "all_reduce.py"
    script.write_text(ALL_REDUCE)
    return [
        subprocess.Popen(
            [sys.executable, str(script), str(size_mib), str(seconds), str(mark)],
            env={**env, "RANK": str(rank)},
        )
        for rank in (0, 1)
    ]


def pair_checks(
    collector: NvmlCollector, window: float, demo: bool, status: str | None, topo: str | None
) -> dict[str, Any]:
    read(collector)
    smi0 = smi_counters(smi("nvlink", "-gt", "d"))
    t0 = time.monotonic()
    time.sleep(window)
    smi1 = smi_counters(smi("nvlink", "-gt", "d"))
    t1 = time.monotonic()
    snapshot = read(collector)
    out: dict[str, Any] = {"window_seconds": round(t1 - t0, 3), "gpus": {}}
    all_ok = True
    for g in snapshot.gpus:
        links: dict[str, Any] = {}
        sum_tx = sum_rx = 0.0
        for n in g.nvlinks:
            row: dict[str, Any] = {
                "state": n.state,
                "version": n.version,
                "remote_gpu": n.remote_gpu_index,
                "tx": n.tx_bytes_per_second,
                "rx": n.rx_bytes_per_second,
                "errors": (n.crc_error_count, n.replay_error_count, n.recovery_error_count),
            }
            key = (g.index, n.link)
            if key in smi0 and key in smi1:
                tx = (smi1[key][0] - smi0[key][0]) * KIB / (t1 - t0)
                rx = (smi1[key][1] - smi0[key][1]) * KIB / (t1 - t0)
                sum_tx, sum_rx = sum_tx + tx, sum_rx + rx
                row |= {
                    "smi_tx": tx,
                    "smi_rx": rx,
                    "ok": within(n.tx_bytes_per_second, tx) and within(n.rx_bytes_per_second, rx),
                }
                all_ok &= row["ok"]
            links[str(n.link)] = row
        gpu: dict[str, Any] = {
            "tx": g.nvlink_tx_bytes_per_second,
            "rx": g.nvlink_rx_bytes_per_second,
            "links_tx_sum": sum(n.tx_bytes_per_second or 0 for n in g.nvlinks),
            "links": links,
        }
        if smi0:
            gpu |= {
                "smi_tx": sum_tx,
                "smi_rx": sum_rx,
                "ok": within(g.nvlink_tx_bytes_per_second, sum_tx)
                and within(g.nvlink_rx_bytes_per_second, sum_rx),
            }
            all_ok &= gpu["ok"]
        states = smi_status(status).get(g.index) if status is not None else None
        if states is not None:
            ours = {n.link: n.state for n in g.nvlinks}
            theirs = {
                link: model.NvlinkState.DOWN if s == "inactive" else model.NvlinkState.UP
                for link, s in states.items()
            }
            gpu["states_ok"] = ours == theirs
            all_ok &= gpu["states_ok"]
        out["gpus"][str(g.index)] = gpu
    if snapshot.topology is not None:
        ours_matrix = [
            [c.strip() for c in line.split("\t")] for line in topology_text.matrix(snapshot.topology)[1:]
        ]
        out["matrix"] = topology_text.matrix(snapshot.topology)
        if topo is not None:
            theirs_matrix = smi_matrix(topo)
            out["nvidia_smi_matrix"] = theirs_matrix
            out["matrix_ok"] = ours_matrix == theirs_matrix
            all_ok &= out["matrix_ok"]
    out["ok"] = all_ok
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for nvlink_verify.json")
    parser.add_argument("--demo", choices=("h100", "h200x2"), help="over a recorded node instead of the GPUs")
    parser.add_argument("--window", type=float, default=5.0, help="seconds between the two reads (default 5)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="how long the all-reduce runs (default 30)"
    )
    parser.add_argument("--size-mib", type=int, default=256, help="all-reduce buffer (default 256 MiB)")
    args = parser.parse_args(argv)
    collector, recorded = open_collector(args.demo)
    status = None if args.demo else smi("nvlink", "--status")
    topo = None if args.demo else smi("topo", "-m")
    report: dict[str, Any] = {"demo": args.demo, "nvidia_smi": status is not None}
    try:
        first = read(collector)
        linked = [g for g in first.gpus if any(n.state is model.NvlinkState.UP for n in g.nvlinks)]
        if len(first.gpus) < 2 or len(linked) < 2:
            time.sleep(min(args.window, 1.0))
            snapshot = read(collector)
            report["path"] = "single GPU (no NVLink)"
            report["checks"] = single_gpu_checks(snapshot, status)
            report["ok"] = all(c["ok"] for c in report["checks"].values())
        else:
            report["path"] = "NVLinked GPUs under an NCCL all-reduce"
            procs: list[subprocess.Popen[bytes]] = []
            if not args.demo:
                mark = Path(tempfile.mkdtemp()) / "warm"
                procs = start_all_reduce(args.seconds, args.size_mib, mark)
                deadline = time.time() + 120
                while not mark.exists() and time.time() < deadline:
                    time.sleep(0.2)
                time.sleep(1.0)
            else:
                time.sleep(10.5)  # into the recorded all-reduce
            report |= pair_checks(collector, args.window, bool(args.demo), status, topo)
            for p in procs:
                p.wait(timeout=args.seconds + 120)
            report["all_reduce_exit_codes"] = [p.returncode for p in procs]
    finally:
        collector.close()
        if recorded is not None:
            recorded.close()
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nvlink_verify.json").write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
