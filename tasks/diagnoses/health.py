"""Pure health diagnosis: a snapshot of the cluster in, findings and the alerts they raise out.
No I/O, so every rule is one row of a table test.

The snapshot is three lists per namespace (pods as rows, Deployments, Endpoints), read in pages
of 500 as kubectl reads them. Every finding goes in the operator's table; a finding about a
workload that is broken now also names the alert it raises (`Finding.alert`) and the workload
(`Finding.subject`), and `sweep_alerts` turns those into Alertmanager v4 alerts, one per
workload and problem, which the sweep hands to the intake to open incidents. Report-only:
a pod that is merely not ready or restarted often, or Failed (evicted, a Job's): its Deployment's
or Service's finding says whether that matters; a Deployment short of replicas mid-rollout (a
stuck one passes its progress deadline); a Pending pod younger than 15 minutes; a Service that
selects no pod at all. An alert that a more specific one explains is left out, so one cause
opens one incident (`_one_alert_per_cause`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.adapters.cluster import Deployment, Endpoints, PodRow
from tasks.diagnoses.crashes import is_crash_looping
from tasks.models.alerts import Alert, AlertBatch

# A pod that restarted this often is worth a look even if it is Running now.
RESTART_WARNING = 5
# A pod not running for this long raises an alert (kube-prometheus's KubePodNotReady waits 15m);
# younger, it is being scheduled or pulled as any new pod is.
NOT_RUNNING_ALERT_AFTER = timedelta(minutes=15)
SOURCE = "health-sweep"  # one of store.incidents.OBSERVATION_SOURCES: it never sends resolved

WAITING_CRASHES = {"CrashLoopBackOff"}
WAITING_IMAGE = {"ImagePullBackOff", "ErrImagePull"}
STUCK_PHASES = {"Pending", "Unknown"}


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertName(StrEnum):
    """What the sweep's alerts are called. Triage reads hints from the names ("crashloop" is
    scenario A, "endpoint" E); the rest it decides on probed evidence."""

    CRASH_LOOPING = "HealthSweepCrashLooping"
    IMAGE_PULL = "HealthSweepImagePullBackOff"
    POD_NOT_RUNNING = "HealthSweepPodNotRunning"
    DEPLOYMENT_MISSING = "HealthSweepDeploymentMissing"
    ROLLOUT_STUCK = "HealthSweepRolloutStuck"
    REPLICAS_UNAVAILABLE = "HealthSweepReplicasUnavailable"
    NO_READY_ENDPOINTS = "HealthSweepNoReadyEndpoints"
    ENDPOINTS_MISSING = "HealthSweepEndpointsMissing"


# Alerts about a workload's pods: the most specific cause, which covers what its Deployment
# and Services show because of it.
POD_ALERTS = frozenset({AlertName.CRASH_LOOPING, AlertName.IMAGE_PULL, AlertName.POD_NOT_RUNNING})


class Subject(BaseModel):
    """The workload a finding points at, named as an alert names it (`deployment=...`)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["deployment", "statefulset", "pod", "service"]
    namespace: str
    name: str

    @property
    def target(self) -> str:
        return f"{self.kind}/{self.name}"


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    severity: Severity
    target: str  # kind/namespace/name
    problem: str
    alert: AlertName | None = None  # the alert it raises; None: the operator's table only
    subject: Subject | None = None  # the workload the alert is about
    since: datetime | None = None  # when the cluster says the problem started


class NamespaceListing(BaseModel):
    """`kubectl get pods,deployments,endpoints -n NAMESPACE`: one LIST of each."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    pods: tuple[PodRow, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    endpoints: tuple[Endpoints, ...] = ()


class HealthSnapshot(BaseModel):
    """What the sweep saw, as adapter facts."""

    model_config = ConfigDict(frozen=True)

    pods: tuple[PodRow, ...] = ()
    deployments: dict[str, Deployment | None] = Field(default_factory=dict)  # "ns/name"
    endpoints: dict[str, Endpoints | None] = Field(default_factory=dict)  # "ns/service"
    # "ns/service": behind the ingress, so no ready endpoint means the ingress answers 503
    ingress_facing: frozenset[str] = frozenset()
    namespaces: tuple[str, ...] = ()
    observed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_listings(
        cls,
        listings: Sequence[NamespaceListing],
        *,
        expected_deployments: Iterable[tuple[str, str]] = (),
        ingress_facing: Iterable[tuple[str, str]] = (),
        observed_at: datetime | None = None,
    ) -> HealthSnapshot:
        """Every object listed, plus None for each expected Deployment or ingress-facing
        Service's Endpoints that a swept namespace does not have (in a namespace that was not
        swept, absence says nothing)."""
        swept = {listing.namespace for listing in listings}
        deployments: dict[str, Deployment | None] = {
            f"{ns}/{name}": None for ns, name in expected_deployments if ns in swept
        }
        endpoints: dict[str, Endpoints | None] = {
            f"{ns}/{name}": None for ns, name in ingress_facing if ns in swept
        }
        for listing in listings:
            deployments |= {f"{d.namespace}/{d.name}": d for d in listing.deployments}
            endpoints |= {f"{e.namespace}/{e.name}": e for e in listing.endpoints}
        return cls(
            pods=tuple(p for listing in listings for p in listing.pods),
            deployments=deployments,
            endpoints=endpoints,
            ingress_facing=frozenset(f"{ns}/{name}" for ns, name in ingress_facing),
            namespaces=tuple(listing.namespace for listing in listings),
            observed_at=observed_at or datetime.now(UTC),
        )


class Handoff(BaseModel):
    """What the intake did with the sweep's alerts (`tasks.triggers`). A handoff that failed
    says why in `error`; the sweep itself never fails for it."""

    model_config = ConfigDict(frozen=True)

    accepted: int = 0
    duplicates: int = 0
    ignored: tuple[str, ...] = ()
    incidents_opened: tuple[int, ...] = ()
    incidents_joined: tuple[int, ...] = ()
    runs_owed: tuple[int, ...] = ()  # incidents the intake queued a triage run for
    runs_created: int | None = None  # triage runs the outbox delivered; None: not attempted
    runs_waiting: int = 0  # owed runs this delivery could not create (Prefect down, no
    # triage deployment): they stay in the outbox for the next delivery
    error: str | None = None


class HealthReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    findings: tuple[Finding, ...]
    pods_seen: int
    pods_ready: int
    namespaces: tuple[str, ...] = ()
    observed_at: datetime | None = None
    alerts: tuple[Alert, ...] = ()  # what the findings raise, one per workload and problem
    handoff: Handoff | None = None  # None: not handed over (nothing to, or open_incidents off)

    @property
    def healthy(self) -> bool:
        return not self.findings


def pod_subject(pod: PodRow) -> Subject:
    """The workload a pod belongs to: its Deployment (the ReplicaSet's name less the
    pod-template-hash, as the Deployment controller names it), its StatefulSet, else itself."""
    owner = pod.owner
    if owner is not None and owner.kind == "ReplicaSet":
        suffix = f"-{pod.labels.get('pod-template-hash', '')}"
        if suffix != "-" and owner.name.endswith(suffix):
            name = owner.name.removesuffix(suffix)
            return Subject(kind="deployment", namespace=pod.namespace, name=name)
    if owner is not None and owner.kind == "StatefulSet":
        return Subject(kind="statefulset", namespace=pod.namespace, name=owner.name)
    return Subject(kind="pod", namespace=pod.namespace, name=pod.name)


def _pod_findings(pod: PodRow, now: datetime) -> list[Finding]:
    target = f"pod/{pod.namespace}/{pod.name}"
    reason = pod.waiting_reason
    # Judged over a window, as monitoring does: a crash-looping pod seen Running between two
    # crashes is still one (a sweep that saw it only in back-off would flip its alert).
    crashing = reason in WAITING_CRASHES or (
        reason not in WAITING_IMAGE and is_crash_looping(pod, now)
    )
    if crashing or reason in WAITING_IMAGE:
        alert = AlertName.CRASH_LOOPING if crashing else AlertName.IMAGE_PULL
        return [
            Finding(
                severity=Severity.CRITICAL,
                target=target,
                problem=reason
                if reason in WAITING_CRASHES | WAITING_IMAGE
                else "crash-looping (running between crashes)",
                alert=alert,
                subject=pod_subject(pod),
            )
        ]
    if pod.phase == "Succeeded" or pod.deleting:
        return []
    if pod.phase != "Running":
        # Failed pods (evicted, or a Job's) linger until collected while their replacements
        # run: whether that matters, the Deployment's availability says.
        stuck = pod.phase in STUCK_PHASES and (
            pod.created_at is None or now - pod.created_at >= NOT_RUNNING_ALERT_AFTER
        )
        return [
            Finding(
                severity=Severity.CRITICAL,
                target=target,
                problem=f"status {pod.status}",
                alert=AlertName.POD_NOT_RUNNING if stuck else None,
                subject=pod_subject(pod),
                since=pod.created_at,
            )
        ]
    found = []
    if not pod.is_ready:
        found.append(
            Finding(severity=Severity.WARNING, target=target, problem=f"not ready ({pod.ready})")
        )
    if pod.restarts >= RESTART_WARNING:
        found.append(
            Finding(severity=Severity.WARNING, target=target, problem=f"{pod.restarts} restarts")
        )
    return found


def _deployment_findings(key: str, deployment: Deployment | None) -> list[Finding]:
    namespace, _, name = key.partition("/")
    subject = Subject(kind="deployment", namespace=namespace, name=name)

    def finding(
        severity: Severity, problem: str, alert: AlertName | None, since: datetime | None = None
    ) -> list[Finding]:
        return [
            Finding(
                severity=severity,
                target=f"deployment/{key}",
                problem=problem,
                alert=alert,
                subject=subject,
                since=since,
            )
        ]

    if deployment is None:
        return finding(Severity.CRITICAL, "missing", AlertName.DEPLOYMENT_MISSING)
    wanted = deployment.replicas if deployment.replicas is not None else 1
    progressing = deployment.condition("Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return finding(
            Severity.CRITICAL,
            "rollout exceeded its progress deadline",
            AlertName.ROLLOUT_STUCK,
            progressing.last_transition_time,
        )
    available = deployment.condition("Available")
    since = (
        available.last_transition_time
        if available is not None and available.status == "False"
        else None
    )
    if deployment.available_replicas == 0 and wanted > 0:
        return finding(
            Severity.CRITICAL,
            f"0/{wanted} replicas available",
            AlertName.REPLICAS_UNAVAILABLE,
            since,
        )
    if deployment.available_replicas < wanted:
        rolling = (
            deployment.observed_generation < deployment.generation
            or deployment.updated_replicas < wanted
        )
        return finding(
            Severity.WARNING,
            f"{deployment.available_replicas}/{wanted} replicas available"
            + (" (rolling out)" if rolling else ""),
            None if rolling else AlertName.REPLICAS_UNAVAILABLE,
            since,
        )
    return []


def _endpoint_findings(key: str, endpoints: Endpoints | None, ingress: bool) -> list[Finding]:
    target = f"endpoints/{key}"
    namespace, _, name = key.partition("/")
    subject = Subject(kind="service", namespace=namespace, name=name)
    if endpoints is None:
        return [
            Finding(
                severity=Severity.CRITICAL,
                target=target,
                problem="missing",
                alert=AlertName.ENDPOINTS_MISSING,
                subject=subject,
            )
        ]
    if endpoints.ready:
        return []
    waiting = len(endpoints.not_ready)
    if not waiting and not ingress:
        return [
            Finding(
                severity=Severity.WARNING, target=target, problem="no endpoints: selects no pod"
            )
        ]
    return [
        Finding(
            severity=Severity.CRITICAL,
            target=target,
            problem=f"no ready endpoints ({waiting} not ready)"
            + (": ingress answers 503" if ingress else ""),
            alert=AlertName.NO_READY_ENDPOINTS,
            subject=subject,
        )
    ]


def _one_alert_per_cause(findings: list[Finding], snapshot: HealthSnapshot) -> list[Finding]:
    """Leave out the alerts a more specific one explains, so one cause opens one incident:
    a workload's failing pods (crash loop, image pull, stuck Pending) explain its Deployment's
    missing replicas and the Services whose not-ready endpoints are all its pods (empty
    endpoints behind crash-looping pods are not runbook E's); a Service whose not-ready
    endpoints are a Deployment's pods explains that Deployment's missing replicas (readiness
    failing behind the ingress is E's). The findings stay in the table either way."""
    subjects = {(p.namespace, p.name): pod_subject(p) for p in snapshot.pods}
    behind: dict[Subject, set[Subject]] = {}
    for e in snapshot.endpoints.values():
        if e is not None:
            service = Subject(kind="service", namespace=e.namespace, name=e.name)
            behind[service] = {
                subjects.get(
                    (e.namespace, a.pod or ""),
                    Subject(kind="pod", namespace=e.namespace, name=a.pod or a.ip),
                )
                for a in e.not_ready
            }
    failing = {f.subject for f in findings if f.alert in POD_ALERTS and f.subject is not None}

    def explained_by_pods(f: Finding) -> bool:
        if f.subject is None or f.alert is None or f.alert in POD_ALERTS:
            return False
        if f.subject.kind == "service":
            workloads = behind.get(f.subject, set())
            return bool(workloads) and workloads <= failing
        return f.alert is AlertName.REPLICAS_UNAVAILABLE and f.subject in failing

    kept = [f.model_copy(update={"alert": None}) if explained_by_pods(f) else f for f in findings]
    fronted = {
        workload
        for f in kept
        if f.alert is AlertName.NO_READY_ENDPOINTS and f.subject is not None
        for workload in behind.get(f.subject, set())
    }
    return [
        f.model_copy(update={"alert": None})
        if f.alert is AlertName.REPLICAS_UNAVAILABLE and f.subject in fronted
        else f
        for f in kept
    ]


def diagnose_health(snapshot: HealthSnapshot) -> HealthReport:
    """Everything in the snapshot that an on-call operator would want to know about, worst
    first, and the alerts it raises."""
    now = snapshot.observed_at
    findings = [f for pod in snapshot.pods for f in _pod_findings(pod, now)]
    findings += [f for k, d in snapshot.deployments.items() for f in _deployment_findings(k, d)]
    findings += [
        f
        for k, e in snapshot.endpoints.items()
        for f in _endpoint_findings(k, e, k in snapshot.ingress_facing)
    ]
    findings = _one_alert_per_cause(findings, snapshot)
    findings.sort(key=lambda f: (f.severity != Severity.CRITICAL, f.target))
    return HealthReport(
        findings=tuple(findings),
        pods_seen=len(snapshot.pods),
        pods_ready=sum(1 for p in snapshot.pods if p.is_ready),
        namespaces=snapshot.namespaces,
        observed_at=now,
        alerts=sweep_alerts(findings, now),
    )


def fingerprint(namespace: str, target: str, problem: str, source: str = SOURCE) -> str:
    """A stable identity for one problem of one workload: the same on every sweep while it
    lasts, so the intake joins repeats to the incident it opened."""
    digest = hashlib.sha256(f"{source}|{namespace}|{target}|{problem}".encode()).hexdigest()
    return digest[:16]


def _summary(name: AlertName, subject: Subject, group: Sequence[Finding]) -> str:
    where = f"{subject.kind} {subject.namespace}/{subject.name}"
    if name in POD_ALERTS and subject.kind != "pod":
        pods = sorted(f.target.rsplit("/", 1)[-1] for f in group)
        problems = sorted({f.problem for f in group})
        return f"{len(pods)} pod(s) of {where}: {', '.join(problems)} ({', '.join(pods)})"
    return f"{where}: {'; '.join(sorted({f.problem for f in group}))}"


def sweep_alerts(findings: Iterable[Finding], seen_at: datetime) -> tuple[Alert, ...]:
    """One firing Alertmanager alert per workload and problem, labelled as alert_target reads
    them; startsAt is when the cluster says the problem began, else when the sweep saw it."""
    groups: dict[tuple[AlertName, Subject], list[Finding]] = {}
    for f in findings:
        if f.alert is not None and f.subject is not None:
            groups.setdefault((f.alert, f.subject), []).append(f)
    alerts = []
    for (name, subject), group in sorted(groups.items(), key=lambda g: (g[0][1].target, g[0][0])):
        critical = any(f.severity is Severity.CRITICAL for f in group)
        severity = Severity.CRITICAL if critical else Severity.WARNING
        starts = min((f.since for f in group if f.since is not None), default=seen_at)
        alerts.append(
            Alert.model_validate(
                {
                    "status": "firing",
                    "labels": {
                        "alertname": name.value,
                        "namespace": subject.namespace,
                        subject.kind: subject.name,
                        "severity": severity.value,
                        "source": SOURCE,
                    },
                    "annotations": {"summary": _summary(name, subject, group)},
                    "startsAt": starts,
                    "fingerprint": fingerprint(subject.namespace, subject.target, name.value),
                }
            )
        )
    return tuple(alerts)


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def alert_batch(alerts: Sequence[Alert], *, receiver: str = SOURCE) -> AlertBatch:
    """The alerts as one Alertmanager v4 webhook payload, grouped by source."""
    return AlertBatch.model_validate(
        {
            "version": "4",
            "groupKey": f'{{}}:{{source="{SOURCE}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": receiver,
            "groupLabels": {"source": SOURCE},
            "commonLabels": _common([a.labels for a in alerts]),
            "commonAnnotations": _common([a.annotations for a in alerts]),
            "externalURL": "",
            "alerts": list(alerts),
        }
    )
