"""On a real GPU that is NOT in MIG mode: MIG queries answer "disabled", no MIG entity appears.

Read-only: it never changes a GPU's MIG mode (no nvmlDeviceSetMigMode, no nvidia-smi -mig) nor
creates an instance. For each GPU it asks NVML the MIG questions gpuwatch asks, beside what the
recorded source (gpuwatch/demo/nvml.py, MIG off) answers to the same calls, and prints both
with a verdict; then runs gpuwatch's real collector for a few ticks and checks that its
snapshot has no MIG device, every GPU's `mig_enabled` is False, no process carries a GPU or
compute instance, and the whole-GPU figures are there as before (utilization, memory, power;
`bench/device/verify.py` is the full comparison with nvidia-smi). `nvidia-smi
--query-gpu=mig.mode.current,mig.mode.pending` and `nvidia-smi -L` are compared too.

Usage (on the GPU machine, from the repository root):
    python3 bench/device/mig_check.py [--out DIR]
`--recorded` runs the same checks over the recorded source (no GPU needed: what CI can run).
Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

import pynvml  # noqa: E402

from gpuwatch import model  # noqa: E402
from gpuwatch.collect.host import HostProcesses  # noqa: E402
from gpuwatch.collect.nvml.collector import NvmlCollector, open_real_nvml  # noqa: E402
from gpuwatch.collect.nvml.gateway import NvmlGateway  # noqa: E402
from gpuwatch.collect.nvml.mig import read_profiles  # noqa: E402
from gpuwatch.config import NvmlSettings  # noqa: E402
from gpuwatch.demo.nvml import RecordedNvml  # noqa: E402

NO_INSTANCE = 0xFFFFFFFF


def answer(api: Any, fn: str, *args: Any) -> str:
    """What one call gives, as text: its value, or the NVML error's name."""
    try:
        value = getattr(api, fn)(*args)
    except pynvml.NVMLError as exc:
        return f"error {_error_name(exc)}"
    except AttributeError as exc:
        return f"missing binding ({exc})"
    if isinstance(value, ctypes.c_uint):
        value = value.value
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    if hasattr(value, "_fields_") or type(value).__name__.startswith(("LP_", "c_")):
        return "a handle"
    return json.dumps(value) if isinstance(value, int | float | str | bool) else type(value).__name__


def _error_name(exc: pynvml.NVMLError) -> str:
    code = getattr(exc, "value", None)
    names = {
        getattr(pynvml, n): n.removeprefix("NVML_ERROR_")
        for n in dir(pynvml)
        if n.startswith("NVML_ERROR_") and isinstance(getattr(pynvml, n), int)
    }
    return names.get(code, str(code))


def mig_answers(api: Any, handle: Any) -> dict[str, str]:
    """The MIG questions gpuwatch asks (or could), on a whole GPU's handle."""
    out = {
        "nvmlDeviceGetMigMode": answer(api, "nvmlDeviceGetMigMode", handle),
        "nvmlDeviceGetMaxMigDeviceCount": answer(api, "nvmlDeviceGetMaxMigDeviceCount", handle),
        "nvmlDeviceGetMigDeviceHandleByIndex(0)": answer(
            api, "nvmlDeviceGetMigDeviceHandleByIndex", handle, 0
        ),
        "nvmlDeviceIsMigDeviceHandle": answer(api, "nvmlDeviceIsMigDeviceHandle", handle),
        "nvmlDeviceGetGpuInstanceId": answer(api, "nvmlDeviceGetGpuInstanceId", handle),
        "nvmlDeviceGetComputeInstanceId": answer(api, "nvmlDeviceGetComputeInstanceId", handle),
        "nvmlDeviceGetDeviceHandleFromMigDeviceHandle": answer(
            api, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle
        ),
    }
    sample = None
    try:
        sample = api.nvmlGpmSampleAlloc()
        out["nvmlGpmMigSampleGet(gi 0)"] = answer(api, "nvmlGpmMigSampleGet", handle, 0, sample)
    except pynvml.NVMLError as exc:
        out["nvmlGpmMigSampleGet(gi 0)"] = f"error {_error_name(exc)} (allocating the sample)"
    finally:
        if sample is not None:
            api.nvmlGpmSampleFree(sample)
    procs = []
    with contextlib.suppress(pynvml.NVMLError):
        procs = api.nvmlDeviceGetComputeRunningProcesses(handle)
    profiles = read_profiles(NvmlGateway(api), "check", handle)
    out["GPU instance profiles"] = " ".join(sorted(set(profiles.values()))) or "none"
    ids = {(getattr(p, "gpuInstanceId", None), getattr(p, "computeInstanceId", None)) for p in procs}
    out["process instance ids"] = json.dumps(sorted(str(i) for i in ids)) if ids else "no processes"
    return out


def disabled(answers: dict[str, str]) -> list[str]:
    """What must hold on a GPU not in MIG mode; each failure in words."""
    bad = []
    if answers["nvmlDeviceGetMigMode"] not in ("[0, 0]",) and not answers["nvmlDeviceGetMigMode"].startswith(
        "error NOT_SUPPORTED"
    ):
        bad.append(f"MIG mode is {answers['nvmlDeviceGetMigMode']}, not disabled ([0, 0])")
    if answers["nvmlDeviceGetMaxMigDeviceCount"] not in ("0",) and not answers[
        "nvmlDeviceGetMaxMigDeviceCount"
    ].startswith("error"):
        bad.append(
            f"max MIG device count {answers['nvmlDeviceGetMaxMigDeviceCount']} (gpuwatch looks only when MIG is on)"
        )
    if not answers["nvmlDeviceGetMigDeviceHandleByIndex(0)"].startswith("error"):
        bad.append("a MIG device handle was given with MIG off")
    if answers["nvmlDeviceIsMigDeviceHandle"] not in ("0",):
        bad.append(f"a whole GPU's handle is a MIG handle? {answers['nvmlDeviceIsMigDeviceHandle']}")
    ids = answers["process instance ids"]
    if ids != "no processes" and ids != json.dumps([str((NO_INSTANCE, NO_INSTANCE))]):
        bad.append(f"processes carry instance ids off MIG: {ids}")
    return bad


def collector_check(api: Any, ticks: int = 4) -> tuple[dict[str, Any], list[str]]:
    """gpuwatch's real collector: no MIG device, no process on one, whole-GPU figures as before."""
    settings = NvmlSettings(interval_seconds=1.0, slow_interval_seconds=1.0)
    if api is pynvml:
        collector = open_real_nvml(settings, HostProcesses())
    else:
        collector = NvmlCollector(api, settings, HostProcesses(), source_name="recorded")
    try:
        for _ in range(ticks):
            collector.poll_fast()
            collector.poll_slow()
            time.sleep(1.0)
        view = collector.view()
    finally:
        collector.close()
    bad = []
    if view.mig_devices:
        bad.append(f"{len(view.mig_devices)} MIG devices in the view")
    for d in view.devices:
        if d.mig_enabled is not False:
            bad.append(f"GPU {d.index}: mig_enabled is {d.mig_enabled}")
    for p in view.processes:
        if (p.gpu_instance_id, p.compute_instance_id, p.mig_index, p.mig_uuid) != (None, None, None, None):
            bad.append(f"process {p.pid} carries MIG placement {p.gpu_instance_id}/{p.compute_instance_id}")
    for g in view.gpus:
        if g.state is not model.GpuState.OK:
            bad.append(f"GPU {g.index} is {g.state.value}: {g.state_reason}")
            continue
        for name in (
            "utilization_ratio",
            "memory_used_bytes",
            "memory_total_bytes",
            "power_watts",
            "sm_clock_mhz",
        ):
            if getattr(g, name) is None:
                bad.append(f"GPU {g.index}: {name} is None (it was read before MIG support)")
    summary = {
        "status": view.status,
        "gpus": [
            {
                "index": g.index,
                "state": g.state.value,
                "utilization_ratio": g.utilization_ratio,
                "memory_used_bytes": g.memory_used_bytes,
                "power_watts": g.power_watts,
                "gpm_sm_activity_ratio": g.gpm.sm_activity_ratio if g.gpm else None,
            }
            for g in view.gpus
        ],
        "mig_enabled": {d.index: d.mig_enabled for d in view.devices},
        "mig_devices": len(view.mig_devices),
        "processes": len(view.processes),
    }
    return summary, bad


def smi() -> tuple[dict[str, Any], list[str]]:
    bad = []
    out: dict[str, Any] = {}
    try:
        mode = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,mig.mode.current,mig.mode.pending", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}, [f"nvidia-smi did not run: {exc}"]
    out["mig.mode"] = mode.stdout.strip().splitlines()
    out["-L"] = listing.stdout.strip().splitlines()
    for line in out["mig.mode"]:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and (parts[1], parts[2]) not in (("Disabled", "Disabled"), ("[N/A]", "[N/A]")):
            bad.append(f"nvidia-smi says GPU {parts[0]} MIG mode {parts[1]} (pending {parts[2]})")
    if any(line.strip().startswith("MIG") for line in out["-L"]):
        bad.append("nvidia-smi -L lists MIG devices")
    return out, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--recorded", action="store_true", help="check the recorded source instead of the GPU"
    )
    args = parser.parse_args()
    api: Any = RecordedNvml(2) if args.recorded else pynvml

    api.nvmlInit()
    recorded = RecordedNvml(1)
    recorded.nvmlInit()
    result: dict[str, Any] = {"source": "recorded" if args.recorded else "nvml", "gpus": []}
    failures: list[str] = []
    try:
        result["driver"] = api.nvmlSystemGetDriverVersion()
        for index in range(api.nvmlDeviceGetCount()):
            handle = api.nvmlDeviceGetHandleByIndex(index)
            real = mig_answers(api, handle)
            ours = mig_answers(recorded, recorded.nvmlDeviceGetHandleByIndex(0))
            name = api.nvmlDeviceGetName(handle)
            print(f"GPU {index} · {name}")
            print(f"  {'call':<48} {'this GPU':<28} {'recorded (MIG off)':<28} same")
            for call, value in real.items():
                mine = ours.get(call, "—")
                differs_by_model = call in ("process instance ids", "GPU instance profiles")
                same = "yes" if value == mine else ("—" if differs_by_model else "NO")
                print(f"  {call:<48} {value:<28} {mine:<28} {same}")
            bad = [f"GPU {index}: {b}" for b in disabled(real)]
            failures += bad
            result["gpus"].append(
                {"index": index, "name": name, "nvml": real, "recorded": ours, "failures": bad}
            )
    finally:
        api.nvmlShutdown()

    summary, bad = collector_check(api)
    failures += bad
    result["collector"] = summary
    print(f"\ngpuwatch's collector: {json.dumps(summary)}")
    if not args.recorded:
        smi_out, bad = smi()
        failures += bad
        result["nvidia_smi"] = smi_out
        print(f"nvidia-smi: {json.dumps(smi_out)}")
    result["failures"] = failures
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mig_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        "\n"
        + (
            "every MIG check holds: MIG disabled, no MIG entity, whole-GPU figures as before"
            if not failures
            else "FAILED:\n  " + "\n  ".join(failures)
        )
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
