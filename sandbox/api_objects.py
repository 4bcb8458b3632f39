"""Object-level rules the REST handlers share: lookups with proper 404s, validation that a real
API server would answer with 422, and the autoscaling/v1 Scale view of a workload.
"""

from __future__ import annotations

from typing import Any

from sandbox.api_wire import ApiError
from sandbox.resources import Kind
from sandbox.selectors import format_label_selector
from sandbox.store import Obj, Store


def details(kind: Kind, name: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "kind": kind.plural}
    if kind.group:
        out["group"] = kind.group
    out.update(extra)
    return out


def qualified(kind: Kind) -> str:
    """`deployments.apps`, or `pods` for the core group, as in API server messages."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, f'{qualified(kind)} "{name}" not found', "NotFound", details(kind, name))


def require(store: Store, kind: Kind, namespace: str, name: str) -> Obj:
    obj = store.get(kind, namespace, name)
    if obj is None:
        raise not_found(kind, name)
    return obj


def _invalid(kind: Kind, name: str, field: str, message: str, reason: str) -> ApiError:
    title = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    return ApiError(
        422,
        f'{title} "{name}" is invalid: {field}: {message}',
        "Invalid",
        details(kind, name, causes=[{"reason": reason, "message": message, "field": field}]),
    )


def _check_containers(kind: Kind, name: str, pod_spec: Any, prefix: str) -> None:
    if not isinstance(pod_spec, dict):
        raise _invalid(kind, name, prefix, "Required value", "FieldValueRequired")
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise _invalid(kind, name, f"{prefix}.containers", "Required value", "FieldValueRequired")
    for i, container in enumerate(containers):
        for key in ("name", "image"):
            if not isinstance(container, dict) or not container.get(key):
                field = f"{prefix}.containers[{i}].{key}"
                raise _invalid(kind, name, field, "Required value", "FieldValueRequired")


_WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet"}


def validate(kind: Kind, obj: Obj) -> None:
    """The few checks that catch a mangled object, e.g. a merge patch that dropped `image`."""
    name = str((obj.get("metadata") or {}).get("name", ""))
    spec = obj.get("spec")
    if kind.kind == "Pod" and spec is not None:
        _check_containers(kind, name, spec, "spec")
    elif kind.kind in _WORKLOADS and spec is not None:
        if kind.kind != "ReplicaSet" and not isinstance(spec.get("template"), dict):
            raise _invalid(kind, name, "spec.template", "Required value", "FieldValueRequired")
        if "template" in spec:
            _check_containers(
                kind, name, (spec.get("template") or {}).get("spec"), "spec.template.spec"
            )
        replicas = spec.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            raise _invalid(
                kind, name, "spec.replicas", f"Invalid value: {replicas!r}", "FieldValueInvalid"
            )


def to_scale(obj: Obj) -> Obj:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": format_label_selector(spec.get("selector")),
        },
    }


def default_container(pod: Obj) -> str:
    """kubectl's choice: the default-container annotation, else the first container."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    chosen = annotations.get("kubectl.kubernetes.io/default-container")
    if chosen:
        return str(chosen)
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0].get("name", "")) if containers else ""


def container_names(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    return [
        str(c.get("name"))
        for group in ("containers", "initContainers", "ephemeralContainers")
        for c in spec.get(group) or []
    ]
