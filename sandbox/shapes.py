"""Shared shapes of API objects: timestamps, owner references, conditions, template hashes and
pods built from a template. The topology and the controllers build objects with these helpers, so
a seeded pod and a pod a controller creates cannot drift apart.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.store import Obj

# The alphabet Kubernetes uses for generated name suffixes and pod-template-hash (no vowels).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(template: Mapping[str, Any]) -> str:
    """The pod-template-hash: a stable 10-character digest of the pod template.

    Same template, same hash, so a seeded ReplicaSet is recognised as current by the Deployment
    controller, and any template edit (restartedAt, env) yields a new ReplicaSet.
    """
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def name_suffix(rng: random.Random) -> str:
    return "".join(rng.choice(_SAFE_ALPHABET) for _ in range(5))


def owner_ref(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_ref(obj: Mapping[str, Any], field_path: str | None = None) -> Obj:
    """An involvedObject / targetRef: carries the uid, which `kubectl describe` selects on."""
    meta = obj["metadata"]
    ref: Obj = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "namespace": meta.get("namespace", ""),
        "uid": meta["uid"],
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    return any(
        ref.get("uid") == owner_uid and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def set_condition(
    conditions: list[Obj],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    *,
    with_update_time: bool = False,
) -> None:
    """Set one condition in place, keeping lastTransitionTime unless the status flips.

    Empty reason and message are left out, as the API server omits them. With
    `with_update_time` (Deployment conditions) lastUpdateTime moves whenever reason or message
    change, as the Deployment controller does.
    """
    cond = next((c for c in conditions if c["type"] == type_), None)
    if cond is None:
        cond = {"type": type_, "status": status, "lastTransitionTime": now}
        if with_update_time:
            cond["lastUpdateTime"] = now
        conditions.append(cond)
    if cond["status"] != status:
        cond["lastTransitionTime"] = now
    if with_update_time and (cond.get("reason"), cond.get("message")) != (reason, message):
        cond["lastUpdateTime"] = now
    cond["status"] = status
    for key, value in (("reason", reason), ("message", message)):
        if value:
            cond[key] = value
        else:
            cond.pop(key, None)


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return cond  # type: ignore[no-any-return]
    return None


# -- pods ------------------------------------------------------------------------------------
def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counted by ReplicaSets: not terminating and not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return not is_terminating(pod) and phase not in ("Succeeded", "Failed")


def is_crashing(pod: Mapping[str, Any]) -> bool:
    """A container is in CrashLoopBackOff or has just died with an error (kubectl STATUS
    CrashLoopBackOff, Error, OOMKilled), and the pod is not being deleted."""
    if is_terminating(pod):
        return False
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return True
        if (state.get("terminated") or {}).get("exitCode", 0) != 0:
            return True
    return False


def has_readiness_probe(pod: Mapping[str, Any]) -> bool:
    return any(c.get("readinessProbe") for c in pod["spec"]["containers"])


def workload_of(pod: Mapping[str, Any]) -> str | None:
    """The Deployment or StatefulSet a pod belongs to, from its controller reference."""
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "StatefulSet":
            return str(ref["name"])
        if ref.get("kind") == "ReplicaSet":
            template_hash = pod["metadata"].get("labels", {}).get("pod-template-hash")
            suffix = f"-{template_hash}"
            name = str(ref["name"])
            return name[: -len(suffix)] if template_hash and name.endswith(suffix) else name
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond["status"] == "True"


def image_id(image: str) -> str:
    repo = image.rsplit(":", 1)[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def container_id(rng: random.Random) -> str:
    return "containerd://" + "".join(rng.choice("0123456789abcdef") for _ in range(64))


def unready_message(containers: Iterable[Mapping[str, Any]]) -> str:
    return f"containers with unready status: [{' '.join(c['name'] for c in containers)}]"


def qos_class(containers: Iterable[Mapping[str, Any]]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits", {}).get(k)
        and r.get("requests", {}).get(k, r["limits"][k]) == r["limits"][k]
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def pending_pod(
    template: Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    node: str | None,
    host_ip: str,
    extra_labels: Mapping[str, str],
    created: str,
    volumes: Iterable[Obj] = (),
    hostname: tuple[str, str] | None = None,
) -> Obj:
    """A pod as the scheduler leaves it: bound to a node (if any fits), containers not started."""
    meta = copy.deepcopy(dict(template.get("metadata") or {}))
    spec = copy.deepcopy(dict(template["spec"]))
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("securityContext", {})
    if hostname:  # (hostname, subdomain): a StatefulSet pod's stable DNS name
        spec["hostname"], spec["subdomain"] = hostname
    spec["volumes"] = [*spec.get("volumes", []), *volumes]
    containers = spec["containers"]
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(meta.get("labels") or {}), **extra_labels},
            "ownerReferences": [owner_ref(owner)],
            "creationTimestamp": created,
        },
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(containers), "conditions": []},
    }
    if meta.get("annotations"):
        pod["metadata"]["annotations"] = dict(meta["annotations"])
    if node is None:
        set_condition(
            pod["status"]["conditions"],
            "PodScheduled",
            "False",
            "Unschedulable",
            "0/0 nodes are available: no nodes available to schedule pods.",
            created,
        )
        return pod
    spec["nodeName"] = node
    pod["status"].update(
        hostIP=host_ip,
        hostIPs=[{"ip": host_ip}],
        startTime=created,
        containerStatuses=[
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            }
            for c in containers
        ],
    )
    conditions = pod["status"]["conditions"]
    for type_, status in (
        ("PodReadyToStartContainers", "False"),
        ("Initialized", "True"),
        ("Ready", "False"),
        ("ContainersReady", "False"),
        ("PodScheduled", "True"),
    ):
        reason, message = ("", "")
        if type_ in ("Ready", "ContainersReady"):
            reason, message = "ContainersNotReady", unready_message(containers)
        set_condition(conditions, type_, status, reason, message, created)
    return pod
