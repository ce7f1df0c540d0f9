"""The container runtime's CRI v1 API: each container's pod and name, from its labels.

Place in the flow: the collector's `cri` job calls `list_containers` over containerd's or
CRI-O's socket (`[kubernetes] cri_socket`); the join gives each GPU process the pod its cgroup
path's container id (or pod UID) belongs to. The kubelet sets the labels read here on every
container it creates: `io.kubernetes.pod.namespace`, `io.kubernetes.pod.name`,
`io.kubernetes.pod.uid`, `io.kubernetes.container.name`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuwatch import model
from gpuwatch.collect.kubernetes.generated import cri_pb2 as pb
from gpuwatch.collect.kubernetes.grpc_unix import UnixChannel

LIST_CONTAINERS = "/runtime.v1.RuntimeService/ListContainers"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_NAME = "io.kubernetes.pod.name"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"


@dataclass(frozen=True, slots=True)
class Containers:
    by_id: dict[str, model.PodRef]
    """Container id → its pod and container name."""
    pods: dict[str, model.PodRef]
    """Pod UID → its pod (container "")."""


def list_containers(channel: UnixChannel) -> Containers:
    """The runtime's containers that belong to pods. Raises `grpc_unix.CallFailed`."""
    reply = channel.call(LIST_CONTAINERS, pb.ListContainersRequest(), pb.ListContainersResponse.FromString)
    return containers_of(reply)


def containers_of(reply: pb.ListContainersResponse) -> Containers:
    by_id: dict[str, model.PodRef] = {}
    pods: dict[str, model.PodRef] = {}
    for c in reply.containers:
        labels = c.labels
        namespace, pod = labels.get(POD_NAMESPACE), labels.get(POD_NAME)
        if not namespace or not pod:
            continue  # not a kubelet's container
        name = labels.get(CONTAINER_NAME) or c.metadata.name
        by_id[c.id] = model.PodRef(namespace, pod, name)
        uid = labels.get(POD_UID)
        if uid:
            pods[uid] = model.PodRef(namespace, pod, "")
    return Containers(by_id, pods)
