"""A PyTorch load for verifying gpuwatch on a real GPU: known phases, marked in a file.

`phases`: bf16 matmul (tensor-core bound, usually at the power cap), then a device-to-device
copy (DRAM bound), then idle. `hold`: keep some memory allocated and do nothing (a second PID
on the GPU with memory but no utilization).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def mark(path: str, phase: str) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"phase": phase, "t": time.time()}) + "\n")


def phases(path: str, seconds: float) -> None:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    mark(path, "matmul")
    end = time.time() + seconds
    while time.time() < end:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
    del a, b
    src = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    torch.cuda.synchronize()
    mark(path, "copy")
    end = time.time() + seconds
    while time.time() < end:
        for _ in range(20):
            dst.copy_(src)
        torch.cuda.synchronize()
    del src, dst
    torch.cuda.empty_cache()
    mark(path, "idle")
    time.sleep(8)
    mark(path, "end")


def hold(gib: float, seconds: float) -> None:
    block = torch.empty(int(gib * 1024**3), dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    time.sleep(seconds)
    del block


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("phases")
    p.add_argument("--file", required=True)
    p.add_argument("--seconds", type=float, default=30)
    h = sub.add_parser("hold")
    h.add_argument("--gib", type=float, default=2)
    h.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    if args.cmd == "phases":
        phases(args.file, args.seconds)
    else:
        hold(args.gib, args.seconds)


if __name__ == "__main__":
    main()
