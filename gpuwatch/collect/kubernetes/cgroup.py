"""Where a process sits among containers and pods, read from its /proc/PID/cgroup file.

Place in the flow: the host lookup (`collect.host`) reads each GPU process's cgroup file once
and asks `parse_cgroup` for its container id and pod UID; the Kubernetes join turns the pair
into a namespace/pod/container through the container runtime's labels. Pure parsing: no I/O.

The shapes it reads (each line is `hierarchy-id:controllers:path`; cgroup v2 has one line
`0::path`, v1 one per controller, the same path in each that matters):

- kubelet with the cgroupfs driver: `/kubepods/<qos>/pod<UID>/<container>`, the UID with
  dashes, `<qos>` absent for Guaranteed pods; the container is the bare 64-hex id (containerd,
  Docker) or `crio-<id>` (CRI-O);
- kubelet with the systemd driver: `/kubepods.slice/kubepods-<qos>.slice/
  kubepods-<qos>-pod<UID>.slice/<scope>`, the UID's dashes written as underscores, the scope
  `cri-containerd-<id>.scope`, `crio-<id>.scope` or `docker-<id>.scope`; under a cgroup root
  (kind, some distributions) the slices are prefixed: `kubelet-kubepods-...`;
- containerd's systemd cgroup names as cgroup v1 shows them outside the slice tree:
  `/system.slice/containerd.service/kubepods-<qos>-pod<UID>.slice:cri-containerd:<id>`;
- a container outside Kubernetes: `/docker/<id>`, `/system.slice/docker-<id>.scope`,
  `/machine.slice/libpod-<id>.scope[/container]` (podman), with no pod UID.

CRI-O's `crio-conmon-<id>.scope` holds the monitor, not the container: it is no container id.
Static pods' UIDs are the kubelet's 32-hex hash of their manifest, not a dashed UUID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX64 = r"[0-9a-f]{64}"
_CONTAINER = re.compile(
    rf"^(?:(?P<prefix>docker|cri-containerd|crio|libpod|containerd)-)?(?P<id>{_HEX64})(?:\.scope)?$"
)
_SYSTEMD_TRIPLE = re.compile(rf"^[^:]+\.slice:(?P<prefix>[a-z-]+):(?P<id>{_HEX64})$")
"""containerd's `slice:prefix:name` systemd cgroup path, as cgroup v1 sometimes shows it."""
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD = re.compile(rf"(?:^|-)pod(?P<uid>{_UUID}|[0-9a-f]{{32}})(?:\.slice)?$")

_RUNTIME = {
    "docker": "docker",
    "cri-containerd": "containerd",
    "containerd": "containerd",
    "crio": "cri-o",
    "libpod": "podman",
}


@dataclass(frozen=True, slots=True)
class CgroupPlace:
    """A process's container and pod as its cgroup path names them."""

    container_id: str | None = None
    """The runtime's 64-hex container id; None for a host process."""
    pod_uid: str | None = None
    """The pod's UID as the API server knows it (dashes, lower case); None outside Kubernetes."""
    runtime: str | None = None
    """`containerd`, `cri-o`, `docker` or `podman` where the path says; None for a bare id."""


HOST = CgroupPlace()


def parse_cgroup(text: str) -> CgroupPlace:
    """The container and pod of one /proc/PID/cgroup file (`HOST` when it names neither)."""
    best = HOST
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        place = parse_path(parts[2])
        if place.container_id is not None and place.pod_uid is not None:
            return place
        better = place.container_id is not None and best.container_id is None
        if better or (best == HOST and place.pod_uid is not None):
            best = place
    return best


def parse_path(path: str) -> CgroupPlace:
    """The container and pod of one cgroup path."""
    components = [c for c in path.split("/") if c]
    container_id: str | None = None
    runtime: str | None = None
    pod_uid: str | None = None
    for depth, component in enumerate(reversed(components)):
        if container_id is None and depth <= 1:  # the leaf, or the leaf's parent (podman's /container)
            match = _CONTAINER.match(component) or _SYSTEMD_TRIPLE.match(component)
            if match is not None:
                container_id = match.group("id")
                runtime = _RUNTIME.get(match.group("prefix") or "")
        if pod_uid is None:
            scope = component.split(":", 1)[0]  # `kubepods-…-pod<UID>.slice:cri-containerd:<id>`
            pod = _POD.search(scope)
            if pod is not None:
                pod_uid = pod.group("uid").replace("_", "-")
    return CgroupPlace(container_id, pod_uid, runtime)
