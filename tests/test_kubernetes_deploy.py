"""deploy/kubernetes/: the manifests fit the Kubernetes schemas (kubernetes-validate carries them,
so no network), they fit each other (selectors, ports, mounts, the sockets the config names),
and the PrometheusRule is the rules file's groups, generated and current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gpuwatch import config
from tests.conftest import REPO

DEPLOY = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
"""The oldest release the manifests promise to fit (runtimeClassName, startupProbe, sizeLimit)."""
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(doc, dict)
    return doc


def manifests() -> list[str]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]


def test_kustomization_lists_every_manifest() -> None:
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(manifests()) == on_disk


API_MANIFESTS = [n for n in manifests() if load(n)["kind"] not in OPERATOR_KINDS]
"""The Operator's kinds are CRDs, outside the Kubernetes schemas: checked by the tests below."""


def test_every_kubernetes_kind_is_validated() -> None:
    assert {load(n)["kind"] for n in API_MANIFESTS} == {"Namespace", "ConfigMap", "DaemonSet", "Service"}


@pytest.mark.parametrize("name", API_MANIFESTS)
def test_each_manifest_fits_its_schema(name: str) -> None:
    kubernetes_validate.validate(load(name), KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_does_not_fit() -> None:
    """The validator really checks (offline): a misspelt field and a wrong type are refused."""
    bad = load("daemonset.yaml")
    bad["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    bad = load("service.yaml")
    bad["spec"]["ports"][0]["port"] = "ninety"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_the_daemonset_sees_host_processes_gpus_and_both_sockets_read_only(tmp_path: Path) -> None:
    pod = load("daemonset.yaml")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["runtimeClassName"] == "nvidia"
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == set(volumes)
    settings = configmap_settings(tmp_path)
    for name, socket in (
        ("pod-resources", settings.kubernetes.pod_resources_socket),
        ("cri-socket", settings.kubernetes.cri_socket),
    ):
        assert mounts[name]["readOnly"] is True
        mounted = Path(mounts[name]["mountPath"])
        assert Path(socket) == mounted or mounted in Path(socket).parents, (name, socket)
        host = Path(volumes[name]["hostPath"]["path"])
        assert host == mounted  # the same path inside as on the node
    assert mounts["state"]["mountPath"] == settings.daemon.state_dir
    assert Path(env["GPUWATCH_CONFIG"]).parent == Path(mounts["config"]["mountPath"])
    port = container["ports"][0]
    assert f":{port['containerPort']}" in settings.daemon.listen
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/v1/health", "port": port["name"]}


def configmap_settings(tmp_path: Path) -> config.Settings:
    path = tmp_path / "config.toml"
    path.write_text(load("configmap.yaml")["data"]["config.toml"])
    return config.load(path)  # the daemon's own validation: one bad key fails here


def test_service_and_servicemonitor_select_the_daemons() -> None:
    labels = load("daemonset.yaml")["spec"]["template"]["metadata"]["labels"]
    service = load("service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    monitor = load("servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # the rules' GpuwatchDown/GpuwatchAbsent select job="gpuwatch": the job label is the app name
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "gpuwatch"


def test_the_prometheusrule_holds_exactly_the_rules_files_groups() -> None:
    rule = load("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    shipped = yaml.safe_load((REPO / "prometheus" / "gpuwatch.rules.yml").read_text())
    assert rule["spec"] == {"groups": shipped["groups"]}


def test_the_prometheusrule_is_generated_and_current() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_prometheusrule.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
