"""Real gRPC servers on unix sockets speaking the kubelet's PodResources v1 and the CRI v1.

The servers implement the servicers protoc generated from the `.proto` definitions
(`gpuwatch/collect/kubernetes/generated/`); a test sets what they answer and can make them
stall (never answer until the test releases them). Sockets live in a short /tmp directory:
a unix socket's path must fit in 108 bytes, which pytest's tmp_path does not promise.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from gpuwatch.collect.kubernetes.generated import (
    cri_pb2,
    cri_pb2_grpc,
    podresources_pb2,
    podresources_pb2_grpc,
)


class _Stall:
    def __init__(self) -> None:
        self.on = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def wait_if_on(self) -> None:
        if self.on:
            self.entered.set()
            self.release.wait(30)


class Kubelet(podresources_pb2_grpc.PodResourcesListerServicer):
    """The kubelet's pod-resources endpoint: `pods` is what List answers."""

    def __init__(self) -> None:
        self.pods: list[podresources_pb2.PodResources] = []
        self.calls = 0
        self.stall = _Stall()

    def List(self, request: Any, context: Any) -> podresources_pb2.ListPodResourcesResponse:
        self.calls += 1
        self.stall.wait_if_on()
        return podresources_pb2.ListPodResourcesResponse(pod_resources=list(self.pods))


class Runtime(cri_pb2_grpc.RuntimeServiceServicer):
    """containerd's or CRI-O's runtime service: `containers` is what ListContainers answers."""

    def __init__(self) -> None:
        self.containers: list[cri_pb2.Container] = []
        self.calls = 0
        self.stall = _Stall()

    def ListContainers(self, request: Any, context: Any) -> cri_pb2.ListContainersResponse:
        self.calls += 1
        self.stall.wait_if_on()
        return cri_pb2.ListContainersResponse(containers=list(self.containers))


def gpu_pod(namespace: str, name: str, container: str, *device_ids: str) -> podresources_pb2.PodResources:
    """A pod with one container holding `device_ids` of nvidia.com/gpu, as the device plugin allots."""
    devices = podresources_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=list(device_ids))
    return podresources_pb2.PodResources(
        name=name,
        namespace=namespace,
        containers=[podresources_pb2.ContainerResources(name=container, devices=[devices])],
    )


def kubelet_container(
    container_id: str, namespace: str, pod: str, container: str, pod_uid: str
) -> cri_pb2.Container:
    """A container as the kubelet creates it: its labels name the pod and the container."""
    return cri_pb2.Container(
        id=container_id,
        pod_sandbox_id="sandbox-" + pod_uid,
        metadata=cri_pb2.ContainerMetadata(name=container, attempt=0),
        state=cri_pb2.CONTAINER_RUNNING,
        labels={
            "io.kubernetes.pod.namespace": namespace,
            "io.kubernetes.pod.name": pod,
            "io.kubernetes.pod.uid": pod_uid,
            "io.kubernetes.container.name": container,
        },
    )


class Servers:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.kubelet = Kubelet()
        self.runtime = Runtime()
        self.kubelet_socket = str(directory / "kubelet.sock")
        self.cri_socket = str(directory / "containerd.sock")


@contextmanager
def running_servers() -> Iterator[Servers]:
    directory = Path(tempfile.mkdtemp(prefix="k8s-", dir="/tmp"))
    servers = Servers(directory)
    grpc_servers = []
    try:
        for add, servicer, path in (
            (
                podresources_pb2_grpc.add_PodResourcesListerServicer_to_server,
                servers.kubelet,
                servers.kubelet_socket,
            ),
            (cri_pb2_grpc.add_RuntimeServiceServicer_to_server, servers.runtime, servers.cri_socket),
        ):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            add(servicer, server)
            server.add_insecure_port(f"unix://{path}")
            server.start()
            grpc_servers.append(server)
        yield servers
    finally:
        servers.kubelet.stall.release.set()
        servers.runtime.stall.release.set()
        for server in grpc_servers:
            server.stop(grace=None)
        shutil.rmtree(directory, ignore_errors=True)
