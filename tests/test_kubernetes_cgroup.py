"""/proc/PID/cgroup → container id and pod UID, on the path shapes each runtime and driver writes.

The shapes follow the kubelet's cgroup naming (pkg/kubelet/cm: `kubepods[/<qos>]/pod<UID>` for
cgroupfs, `kubepods[-<qos>]-pod<UID with _>.slice` for systemd) and files as they appear on real
nodes (cadvisor's, neuvector's and container-info's fixtures): cgroup v1 files list every
controller, v2 files one `0::` line.
"""

from __future__ import annotations

import pytest

from gpuwatch.collect.kubernetes.cgroup import HOST, CgroupPlace, parse_cgroup

UID = "74c13223-5a00-11e9-b385-42010a80018d"
UID_ = UID.replace("-", "_")
CID = "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376"
V1_CONTROLLERS = (
    "12:pids", "11:hugetlb", "10:net_cls,net_prio", "9:perf_event", "8:cpuset", "7:memory",
    "6:devices", "5:freezer", "4:blkio", "3:rdma", "2:cpu,cpuacct", "1:name=systemd",
)  # fmt: skip


def v1(path: str) -> str:
    """A cgroup v1 file: the same path under every controller, as on a real node."""
    return "".join(f"{c}:{path}\n" for c in V1_CONTROLLERS)


def v2(path: str) -> str:
    return f"0::{path}\n"


CASES = {
    # --- cgroupfs driver: dashes in the UID, the QoS level absent for Guaranteed pods
    "v1 cgroupfs containerd besteffort": (v1(f"/kubepods/besteffort/pod{UID}/{CID}"), "containerd?"),
    "v1 cgroupfs containerd guaranteed": (v1(f"/kubepods/pod{UID}/{CID}"), "containerd?"),
    "v1 cgroupfs docker burstable": (v1(f"/kubepods/burstable/pod{UID}/{CID}"), "containerd?"),
    "v1 cgroupfs cri-o": (v1(f"/kubepods/burstable/pod{UID}/crio-{CID}"), "cri-o"),
    "v2 cgroupfs containerd": (v2(f"/kubepods/burstable/pod{UID}/{CID}"), "containerd?"),
    "v2 cgroupfs cri-o": (v2(f"/kubepods/besteffort/pod{UID}/crio-{CID}"), "cri-o"),
    # --- systemd driver: underscores in the UID, one slice per level
    "v1 systemd containerd": (
        v1(
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope"
        ),
        "containerd",
    ),
    "v1 systemd docker guaranteed": (
        v1(f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope"),
        "docker",
    ),
    "v1 systemd cri-o": (v1(f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope"), "cri-o"),
    "v2 systemd containerd": (
        v2(
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
        ),
        "containerd",
    ),
    "v2 systemd cri-o": (
        v2(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{CID}.scope"),
        "cri-o",
    ),
    "v2 systemd docker (cri-dockerd)": (
        v2(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{CID}.scope"),
        "docker",
    ),
    # --- a kubelet with a cgroup root (kind, k3s in a container): prefixed slices
    "v2 systemd under a cgroup root (kind)": (
        v2(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
        ),
        "containerd",
    ),
    # --- read from inside a container with its own cgroup namespace (the DaemonSet): paths are
    # relative to the reader's cgroup, climbing out with `..`
    "v2 systemd seen from a private cgroup namespace": (
        v2(f"/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"),
        "containerd",
    ),
    # --- containerd's systemd cgroup as cgroup v1 shows it outside the slice tree
    "v1 containerd systemd triple": (
        v1(f"/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{CID}"),
        "containerd",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_every_runtime_and_driver_gives_container_and_pod(name: str) -> None:
    text, runtime = CASES[name]
    place = parse_cgroup(text)
    assert place.container_id == CID
    assert place.pod_uid == UID
    assert place.runtime == (None if runtime == "containerd?" else runtime)


def test_a_static_pod_uid_is_the_manifest_hash() -> None:
    uid = "5d4f8f8a4e3b4a2a9c1d2e3f4a5b6c7d"
    place = parse_cgroup(
        v2(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/crio-{CID}.scope")
    )
    assert place == CgroupPlace(CID, uid, "cri-o")


def test_cri_o_conmon_is_not_the_container() -> None:
    text = v2(
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{CID}.scope"
    )
    assert parse_cgroup(text) == CgroupPlace(None, UID, None)


def test_the_pod_sandbox_cgroup_alone_gives_the_pod() -> None:
    assert parse_cgroup(v1(f"/kubepods/besteffort/pod{UID}")) == CgroupPlace(None, UID, None)


def test_a_v1_file_whose_controllers_disagree_prefers_the_full_path() -> None:
    """Hybrid hosts: the systemd line can name a session while a controller names the container."""
    text = (
        "1:name=systemd:/user.slice/user-0.slice/session-1.scope\n"
        f"7:memory:/kubepods/burstable/pod{UID}/{CID}\n"
        "0::/user.slice/user-0.slice/session-1.scope\n"
    )
    assert parse_cgroup(text) == CgroupPlace(CID, UID, None)


@pytest.mark.parametrize(
    ("text", "runtime"),
    [
        (v1(f"/docker/{CID}"), None),
        (v2(f"/system.slice/docker-{CID}.scope"), "docker"),
        (v2(f"/machine.slice/libpod-{CID}.scope/container"), "podman"),
        (v2(f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope"), "podman"),
    ],
)
def test_a_container_outside_kubernetes_has_no_pod(text: str, runtime: str | None) -> None:
    assert parse_cgroup(text) == CgroupPlace(CID, None, runtime)


@pytest.mark.parametrize(
    "text",
    [
        "",
        v2("/"),
        v2("/init.scope"),
        v2("/user.slice/user-1000.slice/session-2.scope"),
        v1("/system.slice/ssh.service"),
        v2("/system.slice/" + "a" * 64 + ".service"),
        v2("/kubepods.slice/kubepods-burstable.slice"),
        "garbage without colons\n",
    ],
)
def test_a_host_process_has_neither(text: str) -> None:
    assert parse_cgroup(text) == HOST
