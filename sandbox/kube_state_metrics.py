"""kube-state-metrics v2, as far as the alert rules read it: pods, Deployments, StatefulSets and
HorizontalPodAutoscalers, computed from the store at scrape time.

kube-state-metrics turns object state into series with no memory of its own, so this module
does the same: every scrape lists the objects and writes one family per metric, with KSM v2's
names, label names and label order (`namespace`, then the object, then the metric's own). It
reads pods the way the sandbox's kubelet writes them (`sandbox.kubelet`): a container's
`state.waiting.reason` (CrashLoopBackOff while in back-off, ContainerCreating before its first
start), its `restartCount`, and the pod's Ready condition. As KSM v2 does, a waiting reason
is a series only while the container waits, with value 1; a running container has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.exposition import Family, counter, gauge
from sandbox.resources import DEPLOYMENT, HPA, POD, STATEFULSET

# kube-state-metrics' order of the pod phases it reports, one series each.
PHASES = ("Pending", "Succeeded", "Failed", "Unknown", "Running")


def _sorted(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objs, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def pod_families(cluster: SandboxCluster) -> list[Family]:
    waiting = gauge(
        "kube_pod_container_status_waiting_reason",
        "Describes the reason the container is currently in waiting state.",
    )
    restarts = counter(
        "kube_pod_container_status_restarts_total",
        "The number of container restarts per container.",
    )
    ready = gauge("kube_pod_status_ready", "Describes whether the pod is ready to serve requests.")
    phase = gauge("kube_pod_status_phase", "The pods current phase.")
    pods, _ = cluster.store.list(POD)
    for pod in _sorted(pods):
        meta, status = pod["metadata"], pod.get("status") or {}
        ids = {"namespace": meta["namespace"], "pod": meta["name"], "uid": meta["uid"]}
        for cs in status.get("containerStatuses") or []:
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                waiting.add(1, **ids, container=cs["name"], reason=reason)
            restarts.add(_int(cs.get("restartCount")), **ids, container=cs["name"])
        _ready_condition(ready, status, ids)
        current = status.get("phase")
        if current:
            for name in PHASES:
                phase.add(1 if name == current else 0, **ids, phase=name)
    return [waiting, restarts, ready, phase]


def _ready_condition(family: Family, status: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            value = str(cond.get("status", "Unknown")).lower()
            for condition in ("true", "false", "unknown"):
                family.add(1 if value == condition else 0, **ids, condition=condition)


def deployment_families(cluster: SandboxCluster) -> list[Family]:
    spec = gauge("kube_deployment_spec_replicas", "Number of desired pods for a deployment.")
    replicas = gauge("kube_deployment_status_replicas", "The number of replicas per deployment.")
    available = gauge(
        "kube_deployment_status_replicas_available",
        "The number of available replicas per deployment.",
    )
    deployments, _ = cluster.store.list(DEPLOYMENT)
    for d in _sorted(deployments):
        ids = {"namespace": d["metadata"]["namespace"], "deployment": d["metadata"]["name"]}
        status = d.get("status") or {}
        spec.add(_int(d["spec"].get("replicas", 1)), **ids)
        replicas.add(_int(status.get("replicas")), **ids)
        available.add(_int(status.get("availableReplicas")), **ids)
    return [spec, replicas, available]


def statefulset_families(cluster: SandboxCluster) -> list[Family]:
    spec = gauge("kube_statefulset_replicas", "Number of desired pods for a StatefulSet.")
    ready = gauge(
        "kube_statefulset_status_replicas_ready", "The number of ready replicas per StatefulSet."
    )
    updated = gauge(
        "kube_statefulset_status_replicas_updated",
        "The number of updated replicas per StatefulSet.",
    )
    sets, _ = cluster.store.list(STATEFULSET)
    for sts in _sorted(sets):
        ids = {"namespace": sts["metadata"]["namespace"], "statefulset": sts["metadata"]["name"]}
        status = sts.get("status") or {}
        spec.add(_int(sts["spec"].get("replicas", 1)), **ids)
        ready.add(_int(status.get("readyReplicas")), **ids)
        updated.add(_int(status.get("updatedReplicas")), **ids)
    return [spec, ready, updated]


def hpa_families(cluster: SandboxCluster) -> list[Family]:
    prefix = "kube_horizontalpodautoscaler"
    low = gauge(
        f"{prefix}_spec_min_replicas",
        "Lower limit for the number of pods that can be set by the autoscaler, default 1.",
    )
    high = gauge(
        f"{prefix}_spec_max_replicas",
        "Upper limit for the number of pods that can be set by the autoscaler; cannot be "
        "smaller than MinReplicas.",
    )
    current = gauge(
        f"{prefix}_status_current_replicas",
        "Current number of replicas of pods managed by this autoscaler.",
    )
    desired = gauge(
        f"{prefix}_status_desired_replicas",
        "Desired number of replicas of pods managed by this autoscaler.",
    )
    hpas, _ = cluster.store.list(HPA)
    for hpa in _sorted(hpas):
        meta, spec, status = hpa["metadata"], hpa["spec"], hpa.get("status") or {}
        ids = {"namespace": meta["namespace"], "horizontalpodautoscaler": meta["name"]}
        low.add(_int(spec.get("minReplicas", 1)), **ids)
        high.add(_int(spec.get("maxReplicas")), **ids)
        current.add(_int(status.get("currentReplicas")), **ids)
        desired.add(_int(status.get("desiredReplicas")), **ids)
    return [low, high, current, desired]


def families(cluster: SandboxCluster) -> list[Family]:
    return [
        *pod_families(cluster),
        *deployment_families(cluster),
        *statefulset_families(cluster),
        *hpa_families(cluster),
    ]
