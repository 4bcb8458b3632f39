"""Pure health diagnosis: a snapshot of the cluster in, findings out. No I/O, so every rule is
one row of a table test."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tasks.adapters.cluster import Deployment, Endpoints, Pod

# A pod that restarted this often is worth a look even if it is Running now.
RESTART_WARNING = 5


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    severity: Severity
    target: str  # kind/namespace/name
    problem: str


class HealthSnapshot(BaseModel):
    """What the sweep saw, as adapter facts."""

    model_config = ConfigDict(frozen=True)

    pods: tuple[Pod, ...] = ()
    deployments: dict[str, Deployment | None] = Field(default_factory=dict)  # "ns/name"
    endpoints: dict[str, Endpoints | None] = Field(default_factory=dict)  # "ns/service"


class HealthReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    findings: tuple[Finding, ...]
    pods_seen: int
    pods_ready: int

    @property
    def healthy(self) -> bool:
        return not self.findings


def _pod_findings(pod: Pod) -> list[Finding]:
    target = f"pod/{pod.namespace}/{pod.name}"
    if pod.waiting_reason in {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"}:
        return [Finding(severity=Severity.CRITICAL, target=target, problem=pod.waiting_reason)]
    if pod.phase == "Succeeded" or pod.deleting:
        return []
    if pod.phase != "Running":
        return [Finding(severity=Severity.CRITICAL, target=target, problem=f"status {pod.status}")]
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
    target = f"deployment/{key}"
    if deployment is None:
        return [Finding(severity=Severity.CRITICAL, target=target, problem="missing")]
    wanted = deployment.replicas if deployment.replicas is not None else 1
    progressing = deployment.condition("Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return [
            Finding(
                severity=Severity.CRITICAL,
                target=target,
                problem="rollout exceeded its progress deadline",
            )
        ]
    if deployment.available_replicas == 0 and wanted > 0:
        return [
            Finding(
                severity=Severity.CRITICAL, target=target, problem=f"0/{wanted} replicas available"
            )
        ]
    if deployment.available_replicas < wanted:
        return [
            Finding(
                severity=Severity.WARNING,
                target=target,
                problem=f"{deployment.available_replicas}/{wanted} replicas available",
            )
        ]
    return []


def _endpoint_findings(key: str, endpoints: Endpoints | None) -> list[Finding]:
    target = f"endpoints/{key}"
    if endpoints is None:
        return [Finding(severity=Severity.CRITICAL, target=target, problem="missing")]
    if not endpoints.ready:
        waiting = len(endpoints.not_ready)
        return [
            Finding(
                severity=Severity.CRITICAL,
                target=target,
                problem=f"no ready endpoints ({waiting} not ready): ingress answers 503",
            )
        ]
    return []


def diagnose_health(snapshot: HealthSnapshot) -> HealthReport:
    """Everything in the snapshot that an on-call operator would want to know about, worst first."""
    findings = [f for pod in snapshot.pods for f in _pod_findings(pod)]
    findings += [f for k, d in snapshot.deployments.items() for f in _deployment_findings(k, d)]
    findings += [f for k, e in snapshot.endpoints.items() for f in _endpoint_findings(k, e)]
    findings.sort(key=lambda f: (f.severity != Severity.CRITICAL, f.target))
    return HealthReport(
        findings=tuple(findings),
        pods_seen=len(snapshot.pods),
        pods_ready=sum(1 for p in snapshot.pods if p.is_ready),
    )
