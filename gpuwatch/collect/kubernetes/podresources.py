"""The kubelet's PodResources v1 API: which container each allotted device belongs to.

Place in the flow: the collector's `pod-resources` job calls `list_devices` over the kubelet's
socket (`[kubernetes] pod_resources_socket`); the join matches the device ids to the GPUs (a
whole GPU's UUID, a MIG device's `MIG-…` UUID; time-slicing replicas as `UUID::N`).
"""

from __future__ import annotations

from gpuwatch import model
from gpuwatch.collect.kubernetes.generated import podresources_pb2 as pb
from gpuwatch.collect.kubernetes.grpc_unix import UnixChannel

LIST = "/v1.PodResourcesLister/List"


def list_devices(channel: UnixChannel) -> dict[str, tuple[model.PodRef, ...]]:
    """Device id → the containers holding it. Raises `grpc_unix.CallFailed`."""
    reply = channel.call(LIST, pb.ListPodResourcesRequest(), pb.ListPodResourcesResponse.FromString)
    return devices_of(reply)


def devices_of(reply: pb.ListPodResourcesResponse) -> dict[str, tuple[model.PodRef, ...]]:
    """Every device id of every container in the reply (any resource: the join keeps those
    that name a GPU it knows), sorted holders per device."""
    holders: dict[str, set[model.PodRef]] = {}
    for pod in reply.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                for device_id in devices.device_ids:
                    ref = model.PodRef(pod.namespace, pod.name, container.name, device_id)
                    holders.setdefault(device_id, set()).add(ref)
    return {d: tuple(sorted(refs, key=_order)) for d, refs in sorted(holders.items())}


def _order(ref: model.PodRef) -> tuple[str, str, str]:
    return (ref.namespace, ref.pod, ref.container)
