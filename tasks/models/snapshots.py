"""What each scenario's probes saw: typed snapshots, the only input of the `diagnose_*` functions.

Snapshots hold adapter facts plus the few derived facts a probe is best placed to compute (a
curl exit code, a log filtered to the runbook's grep). `observed_at` is part of each snapshot so
that time-based rules (recent rescales, a restart that did not help) stay pure.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tasks.adapters.cluster import (
    Deployment,
    Endpoints,
    Event,
    ExecResult,
    HorizontalPodAutoscaler,
    Ingress,
    NetworkPolicy,
    PersistentVolumeClaim,
    Pod,
    PodDescription,
    PodDisruptionBudget,
    PodUsage,
    StatefulSet,
)
from tasks.adapters.http_endpoints import JwksAnswer
from tasks.settings import DEFAULT_QUEUE_DEPTH_ALARM


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    observed_at: datetime


class CrashingPod(BaseModel):
    """`kubectl describe pod` and `kubectl logs --previous` of one crashing pod."""

    model_config = ConfigDict(frozen=True)

    pod: Pod
    description: PodDescription | None = None
    previous_log: str | None = None


class PodCrashSnapshot(Snapshot):
    """Runbook A: the Deployment, its pods, the crashing ones in detail, and its PDB."""

    namespace: str
    deployment_name: str
    deployment: Deployment | None
    pods: tuple[Pod, ...] = ()
    crashing: tuple[CrashingPod, ...] = ()
    pdb: PodDisruptionBudget | None = None
    # Rollout restarts this automation already made for the Deployment in the current incident
    # (from the caller until the incident store keeps count).
    restarts_already_made: int = 0


class HpaThrashSnapshot(Snapshot):
    """Runbook B: `kubectl describe hpa` and the worker log's started/finished/FAILED lines."""

    namespace: str
    hpa_name: str
    hpa: HorizontalPodAutoscaler | None
    worker_task_lines: tuple[str, ...] = ()
    crashing_pods: tuple[str, ...] = ()


class QueueSnapshot(Snapshot):
    """Runbook C: the queue depth (broker), active tasks (celery inspect) and worker replicas."""

    namespace: str
    deployment_name: str
    queue: str
    depth: int | None  # None: the broker could not be read
    active_tasks: int | None  # None: no worker replied
    workers: Deployment | None
    inspect_output: str = ""
    alarm: int = DEFAULT_QUEUE_DEPTH_ALARM  # the depth that pages (settings: queue_depth_alarm)
    broker_error: str = ""  # why the depth is None: the broker's failure, as evidence


class ExecCurl(BaseModel):
    """`kubectl exec deploy/alphaswarm-core -- curl -fsS JWKS_URL`, reduced to what matters."""

    model_config = ConfigDict(frozen=True)

    pod: str
    exit_code: int | None
    stderr: str = ""
    keys: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.keys > 0

    @classmethod
    def from_exec(cls, result: ExecResult, keys: int) -> ExecCurl:
        return cls(
            pod=result.pod, exit_code=result.exit_code, stderr=result.stderr.strip(), keys=keys
        )


class JwksSnapshot(Snapshot):
    """Runbook D: JWKS from here and from a core pod, egress policies, the operator UI's guard."""

    namespace: str
    deployment_name: str
    from_here: JwksAnswer | None
    from_pod: ExecCurl | None
    egress_policies: tuple[NetworkPolicy, ...] = ()  # Egress policies selecting core pods
    operator_ingress: Ingress | None = None  # alphaswarm-cp in alphaswarm-admin
    auth_enforce: str | None = None  # ALPHASWARM_AUTH_ENFORCE on the core Deployment
    auth_variable: str = "ALPHASWARM_AUTH_ENFORCE"
    pod_error: str = ""  # why curl could not be exec'd in a pod at all
    # The runbook's symptom: `jwks_unreachable` lines in the recent log of a core pod.
    symptom_lines: tuple[str, ...] = ()
    log_read: bool = False  # the log could be read (no symptom lines then means none logged)


class ReadinessFailure(BaseModel):
    """An Unhealthy event: which pod's readiness probe fails, and what the probe said."""

    model_config = ConfigDict(frozen=True)

    pod: str
    message: str
    count: int = 1


class ServiceEndpoints(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str
    service: str
    exists: bool = True  # the Service itself; False: nothing by that name
    selector: dict[str, str] = Field(default_factory=dict)  # the Service's pod selector
    endpoints: Endpoints | None
    # The Deployments whose pods the Service selects (through ownerReferences), the restart's
    # target when readiness fails: a Service need not be named like its Deployment.
    deployments: tuple[str, ...] = ()
    # Backing pods that crash-loop: the endpoints are empty because the workload crashes (runbook
    # A or B), not because readiness fails on running pods (E).
    crashing: tuple[str, ...] = ()
    readiness_failures: tuple[ReadinessFailure, ...] = ()


class IngressSnapshot(Snapshot):
    """Runbook E: the ingress-nginx controller, and the Endpoints behind the two Ingresses."""

    controller_namespace: str
    controller_name: str
    controller: Deployment | None
    controller_pods: tuple[Pod, ...] = ()
    controller_log_tail: str = ""
    services: tuple[ServiceEndpoints, ...] = ()
    pdbs: tuple[PodDisruptionBudget, ...] = ()  # of the backends' namespaces


class StatefulSnapshot(Snapshot):
    """Runbook F: the Postgres pod and its PVC, redis-master-0 and its StatefulSet."""

    namespace: str
    postgres_selector: str
    postgres_pods: tuple[Pod, ...] = ()
    postgres_pvcs: tuple[PersistentVolumeClaim, ...] = ()
    redis_pod_name: str
    redis_pod: Pod | None = None
    redis_statefulset: StatefulSet | None = None
    redis_pvcs: tuple[PersistentVolumeClaim, ...] = ()


class CommonDiagnostics(Snapshot):
    """The runbook's common diagnostic commands, in its order."""

    pods: dict[str, tuple[Pod, ...]] = Field(default_factory=dict)  # by namespace
    top_cpu: tuple[PodUsage, ...] = ()
    top_memory: tuple[PodUsage, ...] = ()
    recent_events: tuple[Event, ...] = ()
    api_log_tail: str | None = None
    workload_run_lines: tuple[str, ...] = ()
    recent_runs: str | None = None  # `python -m alphaswarm.cli runs list --limit 20`
    problems: tuple[str, ...] = ()  # what could not be read, so the report says so


class TriageSnapshot(Snapshot):
    """Everything triage looks at; a part is None when it was not probed."""

    stateful: StatefulSnapshot | None = None
    jwks: JwksSnapshot | None = None
    ingress: IngressSnapshot | None = None
    # One per workload with crash-looping pods in the watched namespaces, plus the workloads
    # the alerts name (found or not).
    crashes: tuple[PodCrashSnapshot, ...] = ()
    hpa: HpaThrashSnapshot | None = None
    queue: QueueSnapshot | None = None
    queue_not_probed: str = ""  # why the queue was not looked at, when it was not
