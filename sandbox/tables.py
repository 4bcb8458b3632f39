"""Server-side printing: meta.k8s.io/v1 Tables with the columns a real API server returns.

kubectl `get` asks for `as=Table` and prints whatever columns the server sends; without these
printers every kind would print NAME/AGE only. The cell rules follow
kubernetes/pkg/printers/internalversion/printers.go (wire reference §1.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sandbox.selectors import format_label_selector

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority (0: shown, 1: only with -o wide)
Printer = tuple[tuple[Column, ...], Callable[[Obj, datetime], list[Any]]]

_DESCRIPTION = "Printed by the AlphaSwarm sandbox."


# -- helpers ---------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, which kubectl's AGE columns use."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    when = _parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def _age(obj: Obj, now: datetime) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"), now)


def _name(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _selector_string(selector: Any) -> str:
    """metav1.FormatLabelSelector: `<none>` for a nil or empty selector."""
    return format_label_selector(selector) or "<none>"


def _more(items: list[str], limit: int = 3) -> str:
    if len(items) > limit:
        return ",".join(items[:limit]) + f" + {len(items) - limit} more..."
    return ",".join(items)


def _containers_images(template_spec: Any) -> list[str]:
    containers = (template_spec or {}).get("containers") or []
    return [
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    ]


# -- pods ------------------------------------------------------------------------------------


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    meta = pod.get("metadata") or {}
    restarts = 0
    restartable_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_restartable: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def later(current: datetime | None, cs: Obj) -> datetime | None:
        finished = _parse_time(
            ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        )
        if finished is not None and (current is None or finished > current):
            return finished
        return current

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    restartable = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total += len(restartable)
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        last_restart = later(last_restart, cs)
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if cs.get("name") in restartable:
            restartable_restarts += int(cs.get("restartCount") or 0)
            last_restartable = later(last_restartable, cs)
        if terminated is not None and terminated.get("exitCode") == 0:
            continue
        if cs.get("name") in restartable and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        restarts, last_restart = restartable_restarts, last_restartable
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = later(last_restart, cs)
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            has_ready = any(c.get("type") == "Ready" for c in status.get("conditions") or [])
            reason = "Running" if has_ready else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in {"Succeeded", "Failed"}:
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = status.get("podIPs") or []
    ip = (pod_ips[0].get("ip") if pod_ips else None) or status.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        wanted = {g.get("conditionType") for g in gates}
        true = sum(
            1
            for c in status.get("conditions") or []
            if c.get("type") in wanted and c.get("status") == "True"
        )
        gates_text = f"{true}/{len(gates)}"
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        since(meta.get("creationTimestamp"), now),
        ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]


_POD_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", 0),
    ("Ready", "string", 0),
    ("Status", "string", 0),
    ("Restarts", "string", 0),
    ("Age", "string", 0),
    ("IP", "string", 1),
    ("Node", "string", 1),
    ("Nominated Node", "string", 1),
    ("Readiness Gates", "string", 1),
)


# -- other kinds -----------------------------------------------------------------------------


def _event_cells(ev: Obj, now: datetime) -> list[Any]:
    first = since(ev.get("firstTimestamp"), now)
    if not ev.get("firstTimestamp"):
        first = since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    series = ev.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1
    involved = ev.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    source_text = source.get("component") or ev.get("reportingComponent") or ""
    if source.get("host"):
        source_text = f"{source_text}, {source['host']}"
    return [
        last,
        ev.get("type", ""),
        ev.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        source_text,
        str(ev.get("message", "")).strip(),
        first,
        int(count),
        _name(ev),
    ]


def _endpoints_cells(ep: Obj, now: datetime) -> list[Any]:
    subsets = ep.get("subsets") or []
    if not subsets:
        text = "<none>"
    else:
        listed: list[str] = []
        for ss in subsets:
            addresses = [a.get("ip", "") for a in ss.get("addresses") or []]
            ports = ss.get("ports") or []
            if not ports:
                listed.extend(addresses)
            for port in ports:
                listed.extend(f"{ip}:{port.get('port')}" for ip in addresses)
        text = _more(listed)
    return [_name(ep), text, _age(ep, now)]


def _deployment_cells(d: Obj, now: datetime) -> list[Any]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    template = (spec.get("template") or {}).get("spec")
    return [
        _name(d),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(d, now),
        *_containers_images(template),
        _selector_string(spec.get("selector")),
    ]


def _replicaset_cells(rs: Obj, now: datetime) -> list[Any]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    template = (spec.get("template") or {}).get("spec")
    return [
        _name(rs),
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(rs, now),
        *_containers_images(template),
        _selector_string(spec.get("selector")),
    ]


def _statefulset_cells(sts: Obj, now: datetime) -> list[Any]:
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    template = (spec.get("template") or {}).get("spec")
    return [
        _name(sts),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        _age(sts, now),
        *_containers_images(template),
    ]


def _hpa_targets(hpa: Obj) -> str:
    specs = (hpa.get("spec") or {}).get("metrics") or []
    current = (hpa.get("status") or {}).get("currentMetrics") or []
    parts: list[str] = []
    for i, metric in enumerate(specs):
        cur_metric = current[i] if i < len(current) else {}
        mtype = metric.get("type")
        if mtype in {"Resource", "ContainerResource"}:
            key = "resource" if mtype == "Resource" else "containerResource"
            src = metric.get(key) or {}
            target = src.get("target") or {}
            cur = ((cur_metric.get(key) or {}).get("current")) or {}
            if target.get("averageUtilization") is not None:
                value = cur.get("averageUtilization")
                now_text = f"{value}%" if value is not None else "<unknown>"
                parts.append(f"{src.get('name')}: {now_text}/{target['averageUtilization']}%")
            else:
                value = cur.get("averageValue")
                parts.append(
                    f"{src.get('name')}: {value or '<unknown>'}/{target.get('averageValue')}"
                )
        else:
            parts.append("<unknown>")
    if not parts:
        return "<none>"
    if len(parts) > 2:
        return ", ".join(parts[:2]) + f" + {len(parts) - 2} more..."
    return ", ".join(parts)


def _hpa_cells(hpa: Obj, now: datetime) -> list[Any]:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_replicas = spec.get("minReplicas")
    return [
        _name(hpa),
        f"{ref.get('kind')}/{ref.get('name')}",
        _hpa_targets(hpa),
        "<unset>" if min_replicas is None else min_replicas,
        spec.get("maxReplicas", 0),
        status.get("currentReplicas", 0),
        _age(hpa, now),
    ]


def _service_ports(ports: list[Obj]) -> str:
    out = []
    for p in ports:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            out.append(f"{p.get('port')}/{proto}")
    return ",".join(out) if out else "<none>"


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    stype = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if stype == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        external += [i.get("ip") or i.get("hostname") or "" for i in ingress]
        external_text = ",".join(external) if external else "<pending>"
    elif stype == "ExternalName":
        external_text = spec.get("externalName", "<none>")
    else:
        external_text = ",".join(external) if external else "<none>"
    selector = spec.get("selector") or {}
    return [
        _name(svc),
        stype,
        spec.get("clusterIP") or "<none>",
        external_text,
        _service_ports(spec.get("ports") or []),
        _age(svc, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _ingress_cells(ing: Obj, now: datetime) -> list[Any]:
    spec, status = ing.get("spec") or {}, ing.get("status") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    lb = (status.get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(i.get("ip") or i.get("hostname") or "" for i in lb)
    return [
        _name(ing),
        spec.get("ingressClassName") or "<none>",
        _more(hosts, 4) if hosts else "*",
        address,
        "80, 443" if spec.get("tls") else "80",
        _age(ing, now),
    ]


def _netpol_cells(np: Obj, now: datetime) -> list[Any]:
    selector = (np.get("spec") or {}).get("podSelector")
    text = _selector_string(selector)
    return [_name(np), text, _age(np, now)]


_ACCESS = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _pvc_cells(pvc: Obj, now: datetime) -> list[Any]:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    bound = status.get("phase") == "Bound"
    modes = status.get("accessModes") or [] if bound else []
    return [
        _name(pvc),
        status.get("phase", "Pending"),
        spec.get("volumeName", ""),
        (status.get("capacity") or {}).get("storage", "") if bound else "",
        ",".join(_ACCESS.get(m, m) for m in modes),
        spec.get("storageClassName") or "<unset>",
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc, now),
        spec.get("volumeMode") or "<unset>",
    ]


def _endpointslice_cells(es: Obj, now: datetime) -> list[Any]:
    ports = [str(p.get("port")) for p in es.get("ports") or [] if p.get("port") is not None]
    addresses = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _name(es),
        es.get("addressType", ""),
        ",".join(ports) if ports else "<unset>",
        _more(addresses) if addresses else "<unset>",
        _age(es, now),
    ]


def _pdb_cells(pdb: Obj, now: datetime) -> list[Any]:
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    return [
        _name(pdb),
        str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
        str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
        status.get("disruptionsAllowed", 0),
        _age(pdb, now),
    ]


def _namespace_cells(ns: Obj, now: datetime) -> list[Any]:
    return [_name(ns), (ns.get("status") or {}).get("phase", "Active"), _age(ns, now)]


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = (
        "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    )
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    addresses = status.get("addresses") or []
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    return [
        _name(node),
        state,
        ",".join(roles) or "<none>",
        _age(node, now),
        (status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        internal or "<none>",
    ]


def _generic_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _age(obj, now)]


def _cols(*spec: str) -> tuple[Column, ...]:
    """`"Name"` is shown, `"Name:1"` only with -o wide; every column is a string."""
    out = []
    for s in spec:
        name, _, priority = s.partition(":")
        out.append((name, "string", int(priority or 0)))
    return tuple(out)


PRINTERS: dict[str, Printer] = {
    "/pods": (_POD_COLUMNS, _pod_cells),
    "/events": (
        _cols(
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject:1",
            "Source:1",
            "Message",
            "First Seen:1",
            "Count:1",
            "Name:1",
        ),
        _event_cells,
    ),
    "/endpoints": (_cols("Name", "Endpoints", "Age"), _endpoints_cells),
    "apps/deployments": (
        _cols(
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers:1",
            "Images:1",
            "Selector:1",
        ),
        _deployment_cells,
    ),
    "apps/replicasets": (
        _cols(
            "Name", "Desired", "Current", "Ready", "Age", "Containers:1", "Images:1", "Selector:1"
        ),
        _replicaset_cells,
    ),
    "apps/statefulsets": (
        _cols("Name", "Ready", "Age", "Containers:1", "Images:1"),
        _statefulset_cells,
    ),
    "autoscaling/horizontalpodautoscalers": (
        _cols("Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"),
        _hpa_cells,
    ),
    "/services": (
        _cols("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector:1"),
        _service_cells,
    ),
    "networking.k8s.io/ingresses": (
        _cols("Name", "Class", "Hosts", "Address", "Ports", "Age"),
        _ingress_cells,
    ),
    "networking.k8s.io/networkpolicies": (_cols("Name", "Pod-Selector", "Age"), _netpol_cells),
    "/persistentvolumeclaims": (
        _cols(
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode:1",
        ),
        _pvc_cells,
    ),
    "discovery.k8s.io/endpointslices": (
        _cols("Name", "AddressType", "Ports", "Endpoints", "Age"),
        _endpointslice_cells,
    ),
    "policy/poddisruptionbudgets": (
        _cols("Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"),
        _pdb_cells,
    ),
    "/namespaces": (_cols("Name", "Status", "Age"), _namespace_cells),
    "/nodes": (_cols("Name", "Status", "Roles", "Age", "Version", "Internal-IP:1"), _node_cells),
}
_GENERIC: Printer = (_cols("Name", "Age"), _generic_cells)

_INTEGER_HINTS = {
    "Up-to-date",
    "Available",
    "Desired",
    "Current",
    "MaxPods",
    "Replicas",
    "Allowed Disruptions",
    "Count",
}


def _column_definitions(columns: Iterable[Column]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": "integer" if name in _INTEGER_HINTS else kind,
            "format": "name" if name == "Name" else "",
            "description": _DESCRIPTION,
            "priority": priority,
        }
        for name, kind, priority in columns
    ]


def _row_object(obj: Obj, include: str) -> Any:
    if include == "Object":
        return obj
    if include == "None":
        return None
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    kind_key: str, items: Iterable[Obj], resource_version: str, include_object: str = "Metadata"
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table for `items` of the kind with storage key `kind_key`."""
    columns, cells = PRINTERS.get(kind_key, _GENERIC)
    now = datetime.now(UTC)
    include = include_object or "Metadata"
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": cells(obj, now)}
        if include != "None":
            row["object"] = _row_object(obj, include)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": _column_definitions(columns),
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    """kubectl's Accept lists Table first with a JSON fallback; the client never asks."""
    return "as=Table" in accept
