"""The StatefulSet controller: stable pod names, one PVC per ordinal, ordered creation.

A deleted `postgres-0` or `redis-master-0` comes back under the same name with a new uid and
restartCount 0 once the old pod has finished terminating (never two pods of one name), mounting
the same claim `<template>-<set>-<ordinal>`; claims are never deleted
(the default Retain policy). That is why the runbook's "delete the pod" fixes a wedged process
but not a full disk.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.events import record_event
from sandbox.resources import POD, PVC, STATEFULSET
from sandbox.scheduler import schedule_pod
from sandbox.shapes import is_active, is_ready, rfc3339, template_hash
from sandbox.store import Obj
from sandbox.termination import grace_seconds, mark_terminating


def claim_name(template: str, statefulset: str, ordinal: int) -> str:
    return f"{template}-{statefulset}-{ordinal}"


def revision(statefulset: Mapping[str, Any]) -> str:
    return f"{statefulset['metadata']['name']}-{template_hash(statefulset['spec']['template'])}"


def claim(statefulset: Mapping[str, Any], vct: Mapping[str, Any], ordinal: int, now: float) -> Obj:
    """A bound PVC for one ordinal, as the provisioner leaves it."""
    meta = statefulset["metadata"]
    name = claim_name(vct["metadata"]["name"], meta["name"], ordinal)
    spec = copy.deepcopy(dict(vct["spec"]))
    spec.setdefault("storageClassName", "standard")
    spec.setdefault("volumeMode", "Filesystem")
    spec["volumeName"] = f"pvc-{template_hash({'claim': name, 'ns': meta['namespace']})}"
    return {
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": dict(statefulset["spec"]["selector"].get("matchLabels", {})),
            "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "volume.kubernetes.io/storage-provisioner": "pd.csi.storage.gke.io",
            },
            "finalizers": ["kubernetes.io/pvc-protection"],
            "creationTimestamp": rfc3339(now),
        },
        "spec": spec,
        "status": {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes", ["ReadWriteOnce"])),
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
        },
    }


class StatefulSetController:
    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster

    def step(self, now: float) -> None:
        sets, _ = self.cluster.store.list(STATEFULSET)
        for sts in sets:
            self._sync(sts, now)

    def _sync(self, sts: Mapping[str, Any], now: float) -> None:
        store = self.cluster.store
        meta, spec = sts["metadata"], sts["spec"]
        ns, name = meta["namespace"], meta["name"]
        replicas = spec.get("replicas", 1)
        rev = revision(sts)
        pods = [store.get(POD, ns, f"{name}-{i}") for i in range(replicas)]
        for ordinal, pod in enumerate(pods):
            if pod is not None:
                if not is_ready(pod) and spec.get("podManagementPolicy") != "Parallel":
                    break  # OrderedReady: the next ordinal waits for this one
                continue
            pods[ordinal] = self._create(sts, ordinal, rev, now)
            break
        extra = replicas  # scaled down: the highest ordinals go first
        while (pod := store.get(POD, ns, f"{name}-{extra}")) is not None:
            if is_active(pod):
                store.update(
                    POD,
                    ns,
                    f"{name}-{extra}",
                    lambda p: mark_terminating(p, grace_seconds(p), now),
                )
                record_event(
                    store,
                    sts,
                    "SuccessfulDelete",
                    f"delete Pod {name}-{extra} in StatefulSet {name} successful",
                    now=now,
                    component="statefulset-controller",
                )
            extra += 1
        present = [p for p in pods if p is not None and is_active(p)]
        ready = sum(1 for p in present if is_ready(p))
        status: Obj = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(present),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(present),
            "updatedReplicas": len(present),
            "currentRevision": rev,
            "updateRevision": rev,
            "collisionCount": 0,
        }
        for key in ("readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"):
            if not status[key]:
                del status[key]

        def write(obj: Obj) -> None:
            obj["status"] = status

        store.update(STATEFULSET, ns, name, write)

    def _create(self, sts: Mapping[str, Any], ordinal: int, rev: str, now: float) -> Obj:
        store = self.cluster.store
        meta, spec = sts["metadata"], sts["spec"]
        ns, name = meta["namespace"], meta["name"]
        volumes: list[Obj] = []
        for vct in spec.get("volumeClaimTemplates") or []:
            pvc = claim(sts, vct, ordinal, now)
            claim_ = pvc["metadata"]["name"]
            if store.get(PVC, ns, claim_) is None:
                store.create(PVC, pvc)
                record_event(
                    store,
                    sts,
                    "SuccessfulCreate",
                    f"create Claim {claim_} Pod {name}-{ordinal} in StatefulSet {name} success",
                    now=now,
                    component="statefulset-controller",
                )
            volumes.append(
                {"name": vct["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_}}
            )
        pod = schedule_pod(
            self.cluster,
            spec["template"],
            name=f"{name}-{ordinal}",
            namespace=ns,
            owner=sts,
            extra_labels={
                "apps.kubernetes.io/pod-index": str(ordinal),
                "controller-revision-hash": rev,
                "statefulset.kubernetes.io/pod-name": f"{name}-{ordinal}",
            },
            volumes=volumes,
            hostname=(f"{name}-{ordinal}", spec.get("serviceName", name)),
            now=now,
        )
        record_event(
            store,
            sts,
            "SuccessfulCreate",
            f"create Pod {name}-{ordinal} in StatefulSet {name} successful",
            now=now,
            component="statefulset-controller",
        )
        return pod
