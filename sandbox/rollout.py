"""The Deployment and ReplicaSet controllers, reduced to what `kubectl rollout status` and an
operator can observe.

A template change gets a new ReplicaSet (named by the template's hash, with the next revision);
the rolling update then scales it up and the old ones down within maxSurge / maxUnavailable,
counting only pods that are ready, so a rollout of a template that keeps crashing stalls and,
after progressDeadlineSeconds, reports ProgressDeadlineExceeded. Status fields and condition
reasons are the real controller's, since kubectl's rollout status logic (wire §1.6) reads them.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.events import record_event
from sandbox.resources import DEPLOYMENT, POD, REPLICASET
from sandbox.scheduler import schedule_pod
from sandbox.shapes import (
    controlled_by,
    is_active,
    is_ready,
    name_suffix,
    owner_ref,
    rfc3339,
    set_condition,
    template_hash,
)
from sandbox.store import NotFound, Obj
from sandbox.termination import grace_seconds, mark_terminating

REVISION = "deployment.kubernetes.io/revision"


def _revision(rs: Mapping[str, Any]) -> int:
    return int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))


def _resolve(value: int | str | None, replicas: int, *, round_up: bool, default: str) -> int:
    value = default if value is None else value
    if isinstance(value, int):
        return value
    fraction = int(value.rstrip("%")) * replicas / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def surge_and_unavailable(deployment: Mapping[str, Any]) -> tuple[int, int]:
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, replicas
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = _resolve(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    return surge, (1 if surge == unavailable == 0 else unavailable)


def _omit_zero(status: Obj, *keys: str) -> Obj:
    """The API server omits zero counts (omitempty); so does the sandbox."""
    for key in keys:
        if not status.get(key):
            status.pop(key, None)
    return status


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_rank(pod: Mapping[str, Any]) -> tuple[bool, int, bool, int, float]:
    """The real controller's order for scaling down (ActivePodsWithRanks), lowest first:
    unscheduled, then Pending before Running, not ready before ready, more restarts before
    fewer, and the newest first."""
    status = pod.get("status") or {}
    restarts = sum(cs.get("restartCount", 0) for cs in status.get("containerStatuses") or [])
    created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    return (
        bool(pod["spec"].get("nodeName")),
        _PHASE_RANK.get(status.get("phase", "Pending"), 2),
        is_ready(pod),
        -restarts,
        -created.timestamp(),
    )


class ReplicaSetController:
    """Keeps each ReplicaSet's pod count at spec.replicas and reports its status."""

    def __init__(self, cluster: SandboxCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng

    def step(self, now: float) -> None:
        replica_sets, _ = self.cluster.store.list(REPLICASET)
        for rs in replica_sets:
            self._sync(rs, now)

    def _sync(self, rs: Mapping[str, Any], now: float) -> None:
        store = self.cluster.store
        meta = rs["metadata"]
        ns = meta["namespace"]
        pods, _ = store.list(POD, ns, where=lambda p: controlled_by(p, meta["uid"]))
        active = [p for p in pods if is_active(p)]
        want = rs["spec"].get("replicas", 1)
        for _ in range(want - len(active)):
            pod = schedule_pod(
                self.cluster,
                rs["spec"]["template"],
                name=f"{meta['name']}-{name_suffix(self.rng)}",
                namespace=ns,
                owner=rs,
                extra_labels={},
                now=now,
            )
            active.append(pod)
            record_event(
                store,
                rs,
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                now=now,
                component="replicaset-controller",
            )
        doomed = sorted(active, key=_deletion_rank)[: max(len(active) - want, 0)]
        for pod in doomed:
            active.remove(pod)
            self._terminate(pod, now)
            record_event(
                store,
                rs,
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                now=now,
                component="replicaset-controller",
            )
        ready = sum(1 for p in active if is_ready(p))
        status = _omit_zero(
            {
                "replicas": len(active),
                "fullyLabeledReplicas": len(active),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": meta.get("generation", 1),
            },
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
        )

        def write(obj: Obj) -> None:
            obj["status"] = status

        store.update(REPLICASET, ns, meta["name"], write)

    def _terminate(self, pod: Mapping[str, Any], now: float) -> None:
        meta = pod["metadata"]

        def mark(p: Obj) -> None:
            mark_terminating(p, grace_seconds(p), now)

        with contextlib.suppress(NotFound):
            self.cluster.store.update(POD, meta["namespace"], meta["name"], mark)


class DeploymentController:
    """Rolls Deployments forward (`sync`) and reports their status (`report`)."""

    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster
        self._progress: dict[str, float] = {}  # deployment uid -> when it last made progress
        self._created: set[str] = set()  # deployments whose new ReplicaSet appeared this tick

    # -- rolling -----------------------------------------------------------------------------
    def sync(self, now: float) -> None:
        self._created.clear()
        deployments, _ = self.cluster.store.list(DEPLOYMENT)
        for deployment in deployments:
            if not deployment["spec"].get("paused"):
                self._sync(deployment, now)

    def _replica_sets(self, deployment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        meta = deployment["metadata"]
        sets, _ = self.cluster.store.list(
            REPLICASET, meta["namespace"], where=lambda rs: controlled_by(rs, meta["uid"])
        )
        return sorted(sets, key=_revision)

    def _sync(self, deployment: Mapping[str, Any], now: float) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        sets = self._replica_sets(deployment)
        hash_ = template_hash(spec["template"])
        new = next(
            (rs for rs in sets if rs["metadata"]["labels"].get("pod-template-hash") == hash_), None
        )
        if new is None:
            new = self._create_replica_set(deployment, hash_, sets, now)
            self._created.add(meta["uid"])
        olds = [
            rs for rs in sets if rs is not new and rs["metadata"]["uid"] != new["metadata"]["uid"]
        ]
        replicas = spec.get("replicas", 1)
        if not any(rs["spec"].get("replicas", 0) for rs in olds):
            self._scale(deployment, new, replicas, now)
            return
        counts = self._pod_counts(deployment)
        surge, unavailable = surge_and_unavailable(deployment)
        all_count = sum(rs["spec"].get("replicas", 0) for rs in [new, *olds])
        new_replicas = new["spec"].get("replicas", 0)
        if new_replicas < replicas and all_count < replicas + surge:
            grow = min(replicas + surge - all_count, replicas - new_replicas)
            self._scale(deployment, new, new_replicas + grow, now)
            new_replicas += grow
        min_available = replicas - unavailable
        available = sum(counts.get(rs["metadata"]["uid"], (0, 0))[1] for rs in [new, *olds])
        active = sum(counts.get(rs["metadata"]["uid"], (0, 0))[0] for rs in [new, *olds])
        new_unavailable = new_replicas - counts.get(new["metadata"]["uid"], (0, 0))[1]
        # First old pods that are not ready (they serve nobody), then healthy ones as far as
        # availability allows.
        budget = max(active - min_available - new_unavailable, 0)
        healthy_budget = max(available - min_available, 0)
        for rs in sorted(olds, key=_revision):
            current = rs["spec"].get("replicas", 0)
            if not current:
                continue
            unhealthy = current - counts.get(rs["metadata"]["uid"], (0, 0))[1]
            cut = min(max(unhealthy, 0), budget)
            budget -= cut
            healthy_cut = min(current - cut, healthy_budget)
            healthy_budget -= healthy_cut
            if cut + healthy_cut:
                self._scale(deployment, rs, current - cut - healthy_cut, now)

    def _pod_counts(self, deployment: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        """Per ReplicaSet uid: (active pods, available pods)."""
        pods, _ = self.cluster.store.list(POD, deployment["metadata"]["namespace"])
        counts: dict[str, tuple[int, int]] = {}
        for pod in pods:
            if not is_active(pod):
                continue
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                    n, ready = counts.get(ref["uid"], (0, 0))
                    counts[ref["uid"]] = (n + 1, ready + int(is_ready(pod)))
        return counts

    def _create_replica_set(
        self,
        deployment: Mapping[str, Any],
        hash_: str,
        sets: list[Mapping[str, Any]],
        now: float,
    ) -> Mapping[str, Any]:
        meta, spec = deployment["metadata"], deployment["spec"]
        revision = max((_revision(rs) for rs in sets), default=0) + 1
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = hash_
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = hash_
        surge, _ = surge_and_unavailable(deployment)
        rs = self.cluster.store.create(
            REPLICASET,
            {
                "metadata": {
                    "name": f"{meta['name']}-{hash_}",
                    "namespace": meta["namespace"],
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(spec.get("replicas", 1)),
                        "deployment.kubernetes.io/max-replicas": str(
                            spec.get("replicas", 1) + surge
                        ),
                        REVISION: str(revision),
                    },
                    "ownerReferences": [owner_ref(deployment)],
                    "creationTimestamp": rfc3339(now),
                },
                "spec": {"replicas": 0, "selector": selector, "template": template},
                "status": {"replicas": 0},
            },
        )

        def annotate(d: Obj) -> None:
            d["metadata"].setdefault("annotations", {})[REVISION] = str(revision)

        self.cluster.store.update(DEPLOYMENT, meta["namespace"], meta["name"], annotate)
        self._progress[meta["uid"]] = now
        return rs

    def _scale(
        self, deployment: Mapping[str, Any], rs: Mapping[str, Any], to: int, now: float
    ) -> None:
        current = rs["spec"].get("replicas", 0)
        if current == to:
            return
        rs_meta = rs["metadata"]

        def scale(obj: Obj) -> None:
            obj["spec"]["replicas"] = to
            obj["metadata"].setdefault("annotations", {})[
                "deployment.kubernetes.io/desired-replicas"
            ] = str(deployment["spec"].get("replicas", 1))

        self.cluster.store.update(REPLICASET, rs_meta["namespace"], rs_meta["name"], scale)
        direction = "up" if to > current else "down"
        record_event(
            self.cluster.store,
            deployment,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs_meta['name']} from {current} to {to}",
            now=now,
            component="deployment-controller",
        )

    # -- status ------------------------------------------------------------------------------
    def report(self, now: float) -> None:
        deployments, _ = self.cluster.store.list(DEPLOYMENT)
        for deployment in deployments:
            if not deployment["spec"].get("paused"):
                self._report(deployment, now)

    def _report(self, deployment: Mapping[str, Any], now: float) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        sets = self._replica_sets(deployment)
        hash_ = template_hash(spec["template"])
        new = next(
            (rs for rs in sets if rs["metadata"]["labels"].get("pod-template-hash") == hash_), None
        )
        if new is None:
            return
        counts = self._pod_counts(deployment)
        replicas = spec.get("replicas", 1)
        # As the real controller counts them (ReplicaSet status.replicas): active pods only. Old
        # pods still Terminating are not replicas, so "successfully rolled out" may be printed
        # while some of them are still listed, as on a real cluster.
        total = sum(counts.get(rs["metadata"]["uid"], (0, 0))[0] for rs in sets)
        available = sum(counts.get(rs["metadata"]["uid"], (0, 0))[1] for rs in sets)
        updated = counts.get(new["metadata"]["uid"], (0, 0))[0]
        desired_total = sum(rs["spec"].get("replicas", 0) for rs in sets)
        _, unavailable = surge_and_unavailable(deployment)
        old_status = deployment.get("status") or {}
        figures = (total, updated, available)
        before = (
            old_status.get("replicas", 0),
            old_status.get("updatedReplicas", 0),
            old_status.get("availableReplicas", 0),
        )
        uid = meta["uid"]
        if figures != before or uid not in self._progress:
            self._progress[uid] = now
        stamp = rfc3339(now)
        rs_name = new["metadata"]["name"]
        complete = updated == replicas and total == replicas and available >= replicas
        conditions = copy.deepcopy(old_status.get("conditions") or [])
        if available >= replicas - unavailable:
            available_cond = (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            available_cond = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        set_condition(conditions, "Available", *available_cond, stamp, with_update_time=True)
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif uid in self._created:
            progressing = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        elif now - self._progress[uid] > deadline:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        set_condition(conditions, "Progressing", *progressing, stamp, with_update_time=True)
        status = _omit_zero(
            {
                "observedGeneration": meta.get("generation", 1),
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": available,
                "availableReplicas": available,
                "unavailableReplicas": max(desired_total - available, 0),
                "conditions": sorted(conditions, key=lambda c: c["type"]),
            },
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        )

        def write(d: Obj) -> None:
            d["status"] = status

        self.cluster.store.update(DEPLOYMENT, meta["namespace"], meta["name"], write)
