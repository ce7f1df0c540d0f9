"""The generated PodResources v1 and CRI v1 modules are what protoc makes of the `.proto` files."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_the_generated_grpc_modules_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_kubernetes_protos.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_daemon_reaches_the_published_method_paths() -> None:
    """The paths are the published services' (package v1 and runtime.v1), as a kubelet and
    containerd or CRI-O route them."""
    from gpuwatch.collect.kubernetes import cri, podresources
    from gpuwatch.collect.kubernetes.generated import cri_pb2, podresources_pb2

    lister = podresources_pb2.DESCRIPTOR.services_by_name["PodResourcesLister"]
    runtime = cri_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    assert podresources.LIST == f"/{lister.full_name}/List" == "/v1.PodResourcesLister/List"
    assert (
        cri.LIST_CONTAINERS
        == f"/{runtime.full_name}/ListContainers"
        == "/runtime.v1.RuntimeService/ListContainers"
    )
