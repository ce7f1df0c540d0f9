"""Host facts for GPU processes: container ids from /proc/PID/cgroup, and a real process."""

import os
import time

from gpuwatch.collect.host import HostProcesses, HostUsage, parse_container_id

DOCKER_ID = "4f9c2a1b3c4d" + "0" * 52


def test_cgroup_v2_docker_scope() -> None:
    text = f"0::/system.slice/docker-{DOCKER_ID}.scope\n"
    assert parse_container_id(text) == DOCKER_ID


def test_cgroup_v1_docker_path() -> None:
    text = f"12:memory:/docker/{DOCKER_ID}\n11:cpu,cpuacct:/docker/{DOCKER_ID}\n"
    assert parse_container_id(text) == DOCKER_ID


def test_kubernetes_containerd() -> None:
    text = (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/"
        f"cri-containerd-{DOCKER_ID}.scope\n"
    )
    assert parse_container_id(text) == DOCKER_ID


def test_crio_and_podman() -> None:
    assert parse_container_id(f"0::/machine.slice/libpod-{DOCKER_ID}.scope") == DOCKER_ID
    assert parse_container_id(f"0::/kubepods/besteffort/pod9/crio-{DOCKER_ID}.scope") == DOCKER_ID


def test_host_process_has_no_container() -> None:
    assert parse_container_id("0::/user.slice/user-1000.slice/session-2.scope\n") is None
    assert parse_container_id("0::/init.scope\n") is None
    assert parse_container_id("") is None


def test_a_hex_looking_slice_is_not_a_container() -> None:
    assert parse_container_id("0::/system.slice/" + "a" * 64 + ".service\n") is None


def test_describes_this_very_process() -> None:
    me = HostProcesses().describe(os.getpid())
    assert me is not None
    assert me.command is not None and "pytest" in me.command
    assert me.started_at is not None and me.started_at > 0
    assert HostProcesses().describe(2**22 + 12345) is None  # no such PID


def test_usage_of_a_real_process_cpu_from_the_second_sample() -> None:
    host = HostProcesses()
    me = os.getpid()
    host.sample_usage({me})
    first = host.usage(me)
    assert first is not None and first.cpu_ratio is None  # one sample says nothing of CPU yet
    assert first.rss_bytes is not None and first.rss_bytes > 10 * 1024**2
    spent = time.process_time()
    while time.process_time() - spent < 0.2:  # CPU work between the two samples
        pass
    host.sample_usage({me})
    second = host.usage(me)
    assert second is not None and second.cpu_ratio is not None and second.cpu_ratio > 0
    host.sample_usage({2**22 + 12345})  # no such PID: nothing, no error
    assert host.usage(2**22 + 12345) is None
    host.forget_except(set())
    assert host.usage(me) is None


def test_the_hosts_cpu_memory_swap_and_load() -> None:
    host = HostUsage()
    assert host.view() is None and [j.name for j in host.jobs()] == ["host"]
    host.poll()
    first = host.view()
    assert first is not None and first.cpu_ratio is None  # a share needs two reads
    assert first.memory_total_bytes and first.memory_available_bytes is not None
    assert 0 < first.memory_available_bytes <= first.memory_total_bytes
    assert first.cpu_count and first.load_1m is not None and first.swap_total_bytes is not None
    host.poll()
    second = host.view()
    assert second is not None and second.cpu_ratio is not None and 0.0 <= second.cpu_ratio <= 1.0
