"""Alertmanager v4 payloads as kube-prometheus-stack sends them, about the sandbox's objects: what
`remediate up` fires at the intake for its sample incident, and what the intake's tests and
benchmarks send.

The labels are those of the kubernetes-mixin's KubePodCrashLooping rule, evaluated on
kube-state-metrics: `namespace` and `pod` are the crashing pod's, `job`, `instance` and
`service` are kube-state-metrics' own (tests/fixtures/alerts/rules/ holds the originals).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.resources import POD
from sandbox.shapes import workload_of

RECEIVER = "remediate"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: a firing alert's endsAt


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def crashloop_alert(
    namespace: str,
    pod: str,
    *,
    status: str = "firing",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    """KubePodCrashLooping about one pod; its fingerprint is stable for the pod, like
    Alertmanager's (a hash of the label set)."""
    labels = {
        "alertname": "KubePodCrashLooping",
        "container": "app",
        "endpoint": "http",
        "instance": "10.244.1.5:8080",
        "job": "kube-state-metrics",
        "namespace": namespace,
        "pod": pod,
        "reason": "CrashLoopBackOff",
        "service": "kube-prometheus-stack-kube-state-metrics",
        "severity": "warning",
    }
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "description": f"Pod {namespace}/{pod} (app) is in waiting state "
            '(reason: "CrashLoopBackOff").',
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/"
            "kubepodcrashlooping",
            "summary": "Pod is crash looping.",
        },
        "startsAt": _rfc3339(starts_at or datetime.now(UTC)),
        "endsAt": _rfc3339(ends_at) if ends_at else ZERO_TIME,
        "generatorURL": "http://kube-prometheus-stack-prometheus.monitoring:9090/graph?g0.expr="
        "max_over_time%28kube_pod_container_status_waiting_reason%7Breason%3D%22"
        "CrashLoopBackOff%22%7D%5B5m%5D%29+%3E%3D+1",
        "fingerprint": fingerprint,
    }


def webhook(alerts: list[dict[str, Any]], *, truncated: int = 0) -> dict[str, Any]:
    """The POST body grouping `alerts` by (alertname, namespace), as the chart's route does."""
    first = alerts[0]["labels"]
    group = {"alertname": first["alertname"], "namespace": first["namespace"]}
    common = {k: v for k, v in first.items() if all(a["labels"].get(k) == v for a in alerts[1:])}
    return {
        "receiver": RECEIVER,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {"summary": "Pod is crash looping."},
        "externalURL": "http://kube-prometheus-stack-alertmanager.monitoring:9093",
        "version": "4",
        "groupKey": '{}/{severity=~"warning|critical"}:'
        + "{"
        + ", ".join(f'{k}="{v}"' for k, v in group.items())
        + "}",
        "truncatedAlerts": truncated,
        "routeLabels": {},
        "notification_reason": "first notification",
    }


def crashing_pods(cluster: SandboxCluster, namespace: str, deployment: str) -> list[str]:
    """The names of a Deployment's pods, as an alert would name them."""
    found, _ = cluster.store.list(POD, namespace)
    return sorted(p["metadata"]["name"] for p in found if workload_of(p) == deployment)


def crashloop_payload(cluster: SandboxCluster, namespace: str, deployment: str) -> dict[str, Any]:
    """The payload Alertmanager sends when the Deployment's first pod crash-loops."""
    pods = crashing_pods(cluster, namespace, deployment)
    if not pods:
        raise LookupError(f"no pod of {namespace}/{deployment} in the sandbox")
    return webhook([crashloop_alert(namespace, pods[0])])
