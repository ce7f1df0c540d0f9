"""Kubernetes attribution: which pod holds each GPU, and which pod each GPU process runs in.

Place in the flow: `collector.KubernetesCollector` runs two engine jobs of its own, one per
socket (the kubelet's PodResources API, `podresources.py`; the container runtime's CRI,
`cri.py`), each bounded by a deadline and a reply size cap, and keeps their last answers as a
`contract.KubernetesView`; the engine's join (`collect/joins.py` → `attribute.py`) marks the
snapshot's GPUs and processes from that view. The cgroup parsing that ties a process to its
container and pod (`cgroup.py`) is pure and runs in the host lookup.
"""
