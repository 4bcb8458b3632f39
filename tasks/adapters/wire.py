"""Kubernetes objects in their JSON (wire) form -> the adapter's result models.

The Kubernetes adapter serialises every client object back to its API JSON first
(`ApiClient.sanitize_for_serialization`), so these functions see exactly what the server sent,
with the API's own field names, and can be tested with JSON straight from the reference pages.
`Any` stays in this module and the adapter; everything that leaves is a typed model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tasks.adapters.cluster import (
    BACK_OFF,
    DEFAULT_CONTAINER_ANNOTATION,
    Condition,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ContainerUsage,
    Deployment,
    EndpointAddress,
    Endpoints,
    EndpointSlice,
    EnvVar,
    Event,
    HorizontalPodAutoscaler,
    HpaBehavior,
    HpaMetric,
    HpaPolicy,
    HpaScalingRules,
    Ingress,
    IngressPath,
    LabelSelector,
    NetworkPolicy,
    ObjectRef,
    OwnerRef,
    PersistentVolumeClaim,
    Pod,
    PodDisruptionBudget,
    PodRow,
    PodUsage,
    PolicyRule,
    PortSpec,
    Rescale,
    ScalableKind,
    Scale,
    Service,
    StatefulSet,
    Termination,
)
from tasks.adapters.pod_status import parse_time, pod_columns
from tasks.adapters.quantities import cpu_millicores, to_bytes

JSON = Mapping[str, Any]


def _obj(value: Any) -> JSON:
    if type(value) is dict:  # nearly always: JSON's objects (the ABC check costs 5x more)
        return value
    return value if isinstance(value, Mapping) else {}


def _sections(raw: JSON) -> tuple[JSON, JSON, JSON]:
    """metadata, spec and status of an API object, each {} when absent."""
    return _obj(raw.get("metadata")), _obj(raw.get("spec")), _obj(raw.get("status"))


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _opt_int(value: Any) -> int | None:
    return _int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _obj(value).items()}


def conditions(items: Any) -> tuple[Condition, ...]:
    return tuple(
        Condition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=_str(c.get("reason")),
            message=_str(c.get("message")),
            last_transition_time=parse_time(c.get("lastTransitionTime")),
            last_update_time=parse_time(c.get("lastUpdateTime")),
        )
        for c in map(_obj, _list(items))
    )


def label_selector(value: Any) -> LabelSelector:
    raw = _obj(value)
    expressions = []
    for expr in map(_obj, _list(raw.get("matchExpressions"))):
        key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
        values = ",".join(str(v) for v in _list(expr.get("values")))
        if op == "In":
            expressions.append(f"{key} in ({values})")
        elif op == "NotIn":
            expressions.append(f"{key} notin ({values})")
        elif op == "Exists":
            expressions.append(key)
        elif op == "DoesNotExist":
            expressions.append(f"!{key}")
    return LabelSelector(
        match_labels=_labels(raw.get("matchLabels")), match_expressions=tuple(expressions)
    )


# ---------------------------------------------------------------------------------------------
# Pods


def termination(value: Any) -> Termination | None:
    raw = _obj(value)
    if not raw:
        return None
    return Termination(
        exit_code=_int(raw.get("exitCode")),
        reason=_str(raw.get("reason")),
        message=_str(raw.get("message")),
        signal=_opt_int(raw.get("signal")),
        started_at=parse_time(raw.get("startedAt")),
        finished_at=parse_time(raw.get("finishedAt")),
    )


def container_state(value: Any) -> ContainerState:
    raw = _obj(value)
    if raw.get("waiting") is not None:
        waiting = _obj(raw["waiting"])
        return ContainerState(
            state="waiting",
            reason=_str(waiting.get("reason")),
            message=_str(waiting.get("message")),
        )
    if raw.get("terminated") is not None:
        done = termination(raw["terminated"]) or Termination(exit_code=0)
        return ContainerState(
            state="terminated", reason=done.reason, message=done.message, terminated=done
        )
    if raw.get("running") is not None:
        return ContainerState(
            state="running", started_at=parse_time(_obj(raw["running"]).get("startedAt"))
        )
    return ContainerState(state="unknown")


def container_status(raw: JSON, *, init: bool = False) -> ContainerStatus:
    return ContainerStatus(
        name=str(raw.get("name", "")),
        image=str(raw.get("image", "")),
        ready=bool(raw.get("ready")),
        started=raw.get("started") if isinstance(raw.get("started"), bool) else None,
        restart_count=_int(raw.get("restartCount")),
        state=container_state(raw.get("state")),
        last_termination=termination(_obj(raw.get("lastState")).get("terminated")),
        init=init,
    )


def owner_ref(raw: JSON) -> OwnerRef:
    """One entry of metadata.ownerReferences."""
    return OwnerRef(
        kind=str(raw.get("kind", "")),
        name=str(raw.get("name", "")),
        uid=str(raw.get("uid", "")),
        controller=bool(raw.get("controller")),
    )


def _owner(metadata: JSON) -> OwnerRef | None:
    """The controlling owner, else the first one listed."""
    owners = [_obj(o) for o in _list(metadata.get("ownerReferences"))]
    raw = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    return owner_ref(raw) if raw is not None else None


def _ready_since(status: JSON) -> datetime | None:
    """The Ready condition's transition time while it is True."""
    for c in _list(status.get("conditions")):
        c = _obj(c)
        if c.get("type") == "Ready":
            return parse_time(c.get("lastTransitionTime")) if c.get("status") == "True" else None
    return None


# One termination as the crash summary reads it: exit code, started, finished.
_End = tuple[int, datetime | None, datetime | None]


def _end(value: Any) -> _End:
    raw = _obj(value)
    return (
        _int(raw.get("exitCode")),
        parse_time(raw.get("startedAt")),
        parse_time(raw.get("finishedAt")),
    )


def _crash_summary(statuses: Sequence[JSON]) -> tuple[str | None, dict[str, Any]]:
    """The first waiting reason and the row's crash summary, from the containerStatuses' JSON:
    what `cluster.crash_summary` computes from the typed statuses, without building them."""
    waiting_reason: str | None = None
    ends: list[_End] = []  # last states first, then current ones (as `pod` orders them)
    current: list[_End] = []
    failing = False
    running: list[datetime] = []
    most = 0
    for cs in statuses:
        most = max(most, _int(cs.get("restartCount")))
        last = _obj(cs.get("lastState")).get("terminated")
        if last:
            ends.append(_end(last))
        state = _obj(cs.get("state"))
        if state.get("waiting") is not None:
            reason = _str(_obj(state["waiting"]).get("reason"))
            if reason and waiting_reason is None:
                waiting_reason = reason
            failing = failing or reason == BACK_OFF
        elif state.get("terminated") is not None:
            done = _end(state["terminated"])
            current.append(done)
            failing = failing or done[0] != 0
        elif state.get("running") is not None:
            started = parse_time(_obj(state["running"]).get("startedAt"))
            if started is not None:
                running.append(started)
    ends += current
    latest = max(ends, key=lambda e: (e[2] is not None, e[2]), default=None)
    crashes = [e[2] for e in ends if e[0] != 0 and e[2] is not None]
    return waiting_reason, {
        "max_restarts": most,
        "container_failing": failing,
        "last_crash_at": max(crashes, default=None),
        "running_since": min(running, default=None),
        "last_run_seconds": (
            (latest[2] - latest[1]).total_seconds()
            if latest is not None and latest[1] is not None and latest[2] is not None
            else None
        ),
    }


def _row_fields(raw: JSON) -> dict[str, Any]:
    metadata, spec, status = _sections(raw)
    columns = pod_columns(raw)
    statuses = [_obj(c) for c in _list(status.get("containerStatuses"))]
    waiting, summary = _crash_summary(statuses)
    return {
        "name": str(metadata.get("name", "")),
        "namespace": str(metadata.get("namespace", "")),
        "uid": str(metadata.get("uid", "")),
        "phase": str(status.get("phase") or ""),
        "status": columns.status,
        "ready_containers": columns.ready_containers,
        "total_containers": columns.total_containers,
        "restarts": columns.restarts,
        "last_restart_at": columns.last_restart_at,
        "waiting_reason": waiting,
        "node": _str(spec.get("nodeName")) or None,
        "ip": _str(status.get("podIP")) or None,
        "labels": _labels(metadata.get("labels")),
        "owner": _owner(metadata),
        "created_at": parse_time(metadata.get("creationTimestamp")),
        "deleting": metadata.get("deletionTimestamp") is not None,
        "ready_since": _ready_since(status),
        **summary,
    }


def pod_row(raw: JSON) -> PodRow:
    """A pod's `kubectl get pods -o wide` row and crash summary, without its details."""
    return PodRow(**_row_fields(raw))


def pod(raw: JSON) -> Pod:
    """The row (`pod_row`'s fields) and the details: container statuses, claims, env."""
    _, spec, status = _sections(raw)
    metadata = _obj(raw.get("metadata"))
    statuses = tuple(container_status(c) for c in map(_obj, _list(status.get("containerStatuses"))))
    terminations = [c.last_termination for c in statuses if c.last_termination is not None]
    terminations += [c.state.terminated for c in statuses if c.state.terminated is not None]
    last_termination = max(
        terminations,
        key=lambda t: (t.finished_at is not None, t.finished_at),
        default=None,
    )
    names = tuple(str(_obj(c).get("name", "")) for c in _list(spec.get("containers")))
    annotations = _labels(metadata.get("annotations"))
    default_container = annotations.get(DEFAULT_CONTAINER_ANNOTATION) or (
        names[0] if names else None
    )
    return Pod(
        **_row_fields(raw),
        last_termination=last_termination,
        containers=names,
        default_container=default_container,
        container_statuses=statuses,
        claims=tuple(
            str(_obj(_obj(v).get("persistentVolumeClaim")).get("claimName"))
            for v in _list(spec.get("volumes"))
            if _obj(_obj(v).get("persistentVolumeClaim")).get("claimName")
        ),
        env={
            str(_obj(e).get("name")): str(_obj(e).get("value", ""))
            for c in _list(spec.get("containers"))[:1]
            for e in _list(_obj(c).get("env"))
            if _obj(e).get("name") and "valueFrom" not in _obj(e)
        },
    )


def init_container_statuses(raw: JSON) -> tuple[ContainerStatus, ...]:
    status = _obj(raw.get("status"))
    return tuple(
        container_status(c, init=True)
        for c in map(_obj, _list(status.get("initContainerStatuses")))
    )


def event(raw: JSON) -> Event:
    metadata, involved = _obj(raw.get("metadata")), _obj(raw.get("involvedObject"))
    series = _obj(raw.get("series"))
    source = _obj(raw.get("source"))
    return Event(
        name=str(metadata.get("name", "")),
        namespace=_str(metadata.get("namespace")),
        type=_str(raw.get("type")),
        reason=_str(raw.get("reason")),
        message=_str(raw.get("message")),
        count=_int(raw.get("count"), 1) or 1,
        involved=ObjectRef(
            kind=_str(involved.get("kind")),
            name=_str(involved.get("name")),
            namespace=_str(involved.get("namespace")),
            uid=_str(involved.get("uid")),
        ),
        source=_str(source.get("component")) or _str(raw.get("reportingComponent")) or None,
        first_timestamp=parse_time(raw.get("firstTimestamp")),
        last_timestamp=parse_time(raw.get("lastTimestamp")),
        event_time=parse_time(raw.get("eventTime")),
        series_last_observed=parse_time(series.get("lastObservedTime")),
        series_count=_opt_int(series.get("count")),
        created_at=parse_time(metadata.get("creationTimestamp")),
    )


def pod_usage(raw: JSON) -> PodUsage:
    metadata = _obj(raw.get("metadata"))
    containers = tuple(
        ContainerUsage(
            name=str(c.get("name", "")),
            cpu_millicores=cpu_millicores(_obj(c.get("usage")).get("cpu", "0")),
            memory_bytes=to_bytes(_obj(c.get("usage")).get("memory", "0")),
        )
        for c in map(_obj, _list(raw.get("containers")))
    )
    return PodUsage(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        cpu_millicores=sum(c.cpu_millicores for c in containers),
        memory_bytes=sum(c.memory_bytes for c in containers),
        window=_str(raw.get("window")),
        timestamp=parse_time(raw.get("timestamp")),
        containers=containers,
    )


# ---------------------------------------------------------------------------------------------
# Workloads


def env_var(raw: JSON) -> EnvVar:
    value_from = _obj(raw.get("valueFrom"))
    source = None
    if value_from:
        kind, ref = next(iter(value_from.items()))
        ref = _obj(ref)
        source = f"{kind}:{ref.get('name') or ref.get('fieldPath') or ref.get('resource') or ''}"
        if ref.get("key"):
            source += f"/{ref['key']}"
    return EnvVar(name=str(raw.get("name", "")), value=_str(raw.get("value")), value_from=source)


def container_spec(raw: JSON) -> ContainerSpec:
    return ContainerSpec(
        name=str(raw.get("name", "")),
        image=_str(raw.get("image")),
        env=tuple(env_var(e) for e in map(_obj, _list(raw.get("env")))),
    )


def deployment(raw: JSON) -> Deployment:
    metadata, spec, status = _sections(raw)
    template = _obj(spec.get("template"))
    return Deployment(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=_str(metadata.get("uid")),
        generation=_int(metadata.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        replicas=_opt_int(spec.get("replicas")),
        status_replicas=_int(status.get("replicas")),
        ready_replicas=_int(status.get("readyReplicas")),
        updated_replicas=_int(status.get("updatedReplicas")),
        available_replicas=_int(status.get("availableReplicas")),
        unavailable_replicas=_int(status.get("unavailableReplicas")),
        paused=bool(spec.get("paused")),
        progress_deadline_seconds=_opt_int(spec.get("progressDeadlineSeconds")),
        selector=label_selector(spec.get("selector")),
        template_annotations=_labels(_obj(template.get("metadata")).get("annotations")),
        containers=tuple(
            container_spec(c)
            for c in map(_obj, _list(_obj(template.get("spec")).get("containers")))
        ),
        conditions=conditions(status.get("conditions")),
        resource_version=_str(metadata.get("resourceVersion")),
    )


def statefulset(raw: JSON) -> StatefulSet:
    metadata, spec, status = _sections(raw)
    return StatefulSet(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=_str(metadata.get("uid")),
        replicas=_opt_int(spec.get("replicas")),
        status_replicas=_int(status.get("replicas")),
        ready_replicas=_int(status.get("readyReplicas")),
        current_replicas=_int(status.get("currentReplicas")),
        updated_replicas=_int(status.get("updatedReplicas")),
        available_replicas=_int(status.get("availableReplicas")),
        current_revision=_str(status.get("currentRevision")),
        update_revision=_str(status.get("updateRevision")),
        generation=_int(metadata.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        selector=label_selector(spec.get("selector")),
        service_name=_str(spec.get("serviceName")),
        volume_claim_templates=tuple(
            str(_obj(_obj(t).get("metadata")).get("name", ""))
            for t in _list(spec.get("volumeClaimTemplates"))
        ),
    )


def pvc(raw: JSON) -> PersistentVolumeClaim:
    metadata, spec, status = _sections(raw)
    capacity = _str(_obj(status.get("capacity")).get("storage"))
    return PersistentVolumeClaim(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        phase=_str(status.get("phase")),
        capacity=capacity,
        capacity_bytes=to_bytes(capacity) if capacity else None,
        requested=_str(_obj(_obj(spec.get("resources")).get("requests")).get("storage")),
        storage_class=_str(spec.get("storageClassName")),
        volume_name=_str(spec.get("volumeName")),
        access_modes=tuple(
            str(m) for m in _list(status.get("accessModes") or spec.get("accessModes"))
        ),
        labels=_labels(metadata.get("labels")),
    )


def pod_disruption_budget(raw: JSON) -> PodDisruptionBudget:
    metadata, spec, status = _sections(raw)
    return PodDisruptionBudget(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        min_available=_str(spec.get("minAvailable")),
        max_unavailable=_str(spec.get("maxUnavailable")),
        selector=label_selector(spec.get("selector")),
        disruptions_allowed=_int(status.get("disruptionsAllowed")),
        current_healthy=_int(status.get("currentHealthy")),
        desired_healthy=_int(status.get("desiredHealthy")),
        expected_pods=_int(status.get("expectedPods")),
        conditions=conditions(status.get("conditions")),
    )


def scale(raw: JSON, kind: ScalableKind) -> Scale:
    metadata, spec, status = _sections(raw)
    return Scale(
        kind=kind,
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        replicas=_int(spec.get("replicas")),
        current_replicas=_int(status.get("replicas")),
        selector=_str(status.get("selector")),
    )


# ---------------------------------------------------------------------------------------------
# Autoscaling


def _metric_target(raw: JSON) -> tuple[str | None, str | None]:
    if raw.get("averageUtilization") is not None:
        return "Utilization", f"{raw['averageUtilization']}%"
    if raw.get("averageValue") is not None:
        return "AverageValue", str(raw["averageValue"])
    if raw.get("value") is not None:
        return "Value", str(raw["value"])
    return _str(raw.get("type")), None


def hpa_metric(raw: JSON, *, current: bool) -> HpaMetric:
    kind = str(raw.get("type", ""))
    source_key = kind[:1].lower() + kind[1:]  # Resource -> resource, ContainerResource -> ...
    source = _obj(raw.get(source_key))
    name = _str(source.get("name")) or _str(_obj(source.get("metric")).get("name"))
    target_type, value = _metric_target(_obj(source.get("current" if current else "target")))
    return HpaMetric(type=kind, name=name, target_type=target_type, value=value)


def _scaling_rules(value: Any) -> HpaScalingRules | None:
    if value is None:
        return None
    raw = _obj(value)
    return HpaScalingRules(
        stabilization_window_seconds=_opt_int(raw.get("stabilizationWindowSeconds")),
        select_policy=_str(raw.get("selectPolicy")),
        policies=tuple(
            HpaPolicy(
                type=str(p.get("type", "")),
                value=_int(p.get("value")),
                period_seconds=_int(p.get("periodSeconds")),
            )
            for p in map(_obj, _list(raw.get("policies")))
        ),
    )


def hpa(raw: JSON, rescales: tuple[Rescale, ...] = ()) -> HorizontalPodAutoscaler:
    metadata, spec, status = _sections(raw)
    target = _obj(spec.get("scaleTargetRef"))
    behavior_raw = spec.get("behavior")
    behavior = (
        HpaBehavior(
            scale_up=_scaling_rules(_obj(behavior_raw).get("scaleUp")),
            scale_down=_scaling_rules(_obj(behavior_raw).get("scaleDown")),
        )
        if behavior_raw is not None
        else None
    )
    return HorizontalPodAutoscaler(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=_str(metadata.get("uid")),
        target=ObjectRef(
            kind=_str(target.get("kind")),
            name=_str(target.get("name")),
            namespace=_str(metadata.get("namespace")),
        ),
        min_replicas=_opt_int(spec.get("minReplicas")),
        max_replicas=_int(spec.get("maxReplicas")),
        current_replicas=_opt_int(status.get("currentReplicas")),
        desired_replicas=_int(status.get("desiredReplicas")),
        last_scale_time=parse_time(status.get("lastScaleTime")),
        metrics=tuple(hpa_metric(m, current=False) for m in map(_obj, _list(spec.get("metrics")))),
        current_metrics=tuple(
            hpa_metric(m, current=True) for m in map(_obj, _list(status.get("currentMetrics")))
        ),
        behavior=behavior,
        conditions=conditions(status.get("conditions")),
        rescales=rescales,
    )


# ---------------------------------------------------------------------------------------------
# Networking


def _port(raw: JSON) -> PortSpec:
    return PortSpec(
        port=_int(raw.get("port")),
        name=_str(raw.get("name")),
        protocol=_str(raw.get("protocol")),
        target_port=_str(raw.get("targetPort")),
        node_port=_opt_int(raw.get("nodePort")),
    )


def _address(raw: JSON, *, ready: bool) -> EndpointAddress:
    target = _obj(raw.get("targetRef"))
    return EndpointAddress(
        ip=str(raw.get("ip", "")),
        ready=ready,
        pod=_str(target.get("name")) if target.get("kind", "Pod") == "Pod" else None,
        node=_str(raw.get("nodeName")),
    )


def endpoints(raw: JSON) -> Endpoints:
    metadata = _obj(raw.get("metadata"))
    addresses: list[EndpointAddress] = []
    ports: list[PortSpec] = []
    for subset in map(_obj, _list(raw.get("subsets"))):
        addresses += [_address(a, ready=True) for a in map(_obj, _list(subset.get("addresses")))]
        addresses += [
            _address(a, ready=False) for a in map(_obj, _list(subset.get("notReadyAddresses")))
        ]
        ports += [_port(p) for p in map(_obj, _list(subset.get("ports")))]
    return Endpoints(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        addresses=tuple(addresses),
        ports=tuple(dict.fromkeys(ports)),
    )


def endpoint_slice(raw: JSON) -> EndpointSlice:
    metadata = _obj(raw.get("metadata"))
    found: list[EndpointAddress] = []
    for endpoint in map(_obj, _list(raw.get("endpoints"))):
        cond = _obj(endpoint.get("conditions"))
        target = _obj(endpoint.get("targetRef"))
        # discovery.k8s.io/v1: a nil `ready` means ready (the API's documented default)
        ready = cond.get("ready") is not False
        for ip in _list(endpoint.get("addresses")):
            found.append(
                EndpointAddress(
                    ip=str(ip),
                    ready=ready,
                    pod=_str(target.get("name")) if target.get("kind", "Pod") == "Pod" else None,
                    node=_str(endpoint.get("nodeName")),
                    serving=cond.get("serving") if isinstance(cond.get("serving"), bool) else None,
                    terminating=(
                        cond.get("terminating")
                        if isinstance(cond.get("terminating"), bool)
                        else None
                    ),
                )
            )
    return EndpointSlice(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        service=_labels(metadata.get("labels")).get("kubernetes.io/service-name"),
        address_type=str(raw.get("addressType", "")),
        endpoints=tuple(found),
        ports=tuple(_port(p) for p in map(_obj, _list(raw.get("ports")))),
    )


def service(raw: JSON) -> Service:
    metadata, spec = _obj(raw.get("metadata")), _obj(raw.get("spec"))
    return Service(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        type=_str(spec.get("type")),
        cluster_ip=_str(spec.get("clusterIP")),
        selector=_labels(spec.get("selector")),
        ports=tuple(_port(p) for p in map(_obj, _list(spec.get("ports")))),
    )


def _peer(raw: JSON) -> str:
    parts = []
    if "namespaceSelector" in raw:
        rendered = label_selector(raw.get("namespaceSelector")).render()
        parts.append(f"namespaceSelector: {rendered or '<all namespaces>'}")
    if "podSelector" in raw:
        rendered = label_selector(raw.get("podSelector")).render()
        parts.append(f"podSelector: {rendered or '<all pods>'}")
    if "ipBlock" in raw:
        block = _obj(raw.get("ipBlock"))
        text = f"ipBlock: {block.get('cidr', '')}"
        if block.get("except"):
            text += " except " + ",".join(str(e) for e in _list(block.get("except")))
        parts.append(text)
    return ", ".join(parts)


def _policy_port(raw: JSON) -> str:
    protocol = str(raw.get("protocol") or "TCP")
    port = raw.get("port")
    text = f"{protocol}/{port if port is not None else '*'}"
    if raw.get("endPort") is not None:
        text += f"-{raw['endPort']}"
    return text


def _rules(items: Any, peer_key: str) -> tuple[PolicyRule, ...]:
    return tuple(
        PolicyRule(
            ports=tuple(_policy_port(p) for p in map(_obj, _list(rule.get("ports")))),
            peers=tuple(_peer(p) for p in map(_obj, _list(rule.get(peer_key)))),
        )
        for rule in map(_obj, _list(items))
    )


def network_policy(raw: JSON) -> NetworkPolicy:
    metadata, spec = _obj(raw.get("metadata")), _obj(raw.get("spec"))
    return NetworkPolicy(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        pod_selector=label_selector(spec.get("podSelector")),
        policy_types=tuple(str(t) for t in _list(spec.get("policyTypes"))),
        ingress=_rules(spec.get("ingress"), "from"),
        egress=_rules(spec.get("egress"), "to"),
    )


def _backend(raw: JSON) -> tuple[str | None, str | None]:
    svc = _obj(raw.get("service"))
    port = _obj(svc.get("port"))
    return _str(svc.get("name")), _str(port.get("number") or port.get("name"))


def ingress(raw: JSON) -> Ingress:
    metadata, spec, status = _sections(raw)
    annotations = _labels(metadata.get("annotations"))
    paths: list[IngressPath] = []
    hosts: list[str] = []
    default = _obj(spec.get("defaultBackend"))
    if default:
        name, port = _backend(default)
        paths.append(IngressPath(service=name, port=port))
    for rule in map(_obj, _list(spec.get("rules"))):
        host = _str(rule.get("host"))
        if host:
            hosts.append(host)
        for path in map(_obj, _list(_obj(rule.get("http")).get("paths"))):
            name, port = _backend(_obj(path.get("backend")))
            paths.append(
                IngressPath(
                    host=host,
                    path=_str(path.get("path")),
                    path_type=_str(path.get("pathType")),
                    service=name,
                    port=port,
                )
            )
    balancer = [
        str(_obj(i).get("ip") or _obj(i).get("hostname") or "")
        for i in _list(_obj(status.get("loadBalancer")).get("ingress"))
    ]
    return Ingress(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        class_name=_str(spec.get("ingressClassName"))
        or annotations.get("kubernetes.io/ingress.class"),
        hosts=tuple(dict.fromkeys(hosts)),
        paths=tuple(paths),
        annotations=annotations,
        load_balancer=tuple(b for b in balancer if b),
    )
