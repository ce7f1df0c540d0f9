"""Regenerate the Python modules of the kubelet PodResources v1 and CRI v1 definitions.

    python tools/gen_kubernetes_protos.py           # rewrite gpuwatch/collect/kubernetes/generated/
    python tools/gen_kubernetes_protos.py --check   # exit 1 if a generated file is not current

Needs grpcio-tools (the `test` extra). The daemon imports only the `*_pb2` message modules and
calls the two methods through `grpc.Channel.unary_unary`; the `*_pb2_grpc` modules (servicers
and stubs) are there for the tests' servers, which speak the same protocols on unix sockets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path("gpuwatch/collect/kubernetes/generated")
PROTOS = ("podresources.proto", "cri.proto")


def generate(out: Path) -> list[Path]:
    """Run protoc from the repository root, so the modules import each other by package path."""
    from grpc_tools import protoc

    for proto in PROTOS:
        args = [
            "protoc",
            f"-I{REPO}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(PACKAGE / proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")
    return sorted((out / PACKAGE).glob("*_pb2*.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    if not args.check:
        generate(REPO)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [
            str(PACKAGE / made.name)
            for made in generate(Path(tmp))
            if not (REPO / PACKAGE / made.name).is_file()
            or (REPO / PACKAGE / made.name).read_bytes() != made.read_bytes()
        ]
    if stale:
        print("not current (run python tools/gen_kubernetes_protos.py):", " ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
