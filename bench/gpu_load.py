"""A PyTorch load for bench/tui_bench.py --versus-nvitop: bf16 matmuls on every visible GPU
until killed, so both monitors watch busy GPUs with live processes (as on a real node)."""

from __future__ import annotations

import torch  # type: ignore[import-not-found]


def main() -> None:
    pairs = []
    for index in range(torch.cuda.device_count()):
        device = torch.device("cuda", index)
        a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
        pairs.append((a, a.clone()))
    while True:
        for a, b in pairs:
            a @ b
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
