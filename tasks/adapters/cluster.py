"""The cluster as the runbook sees it: a `Cluster` protocol and the typed facts it returns.

Every result is a frozen pydantic model built from plain data, so a task can log it, compare it,
put it in an audit row or a Prefect result, and no Kubernetes client object leaks past the
adapter. Reads of one named object return `None` when it does not exist; everything else that
goes wrong raises `tasks.adapters.errors.AdapterError` (transient or permanent).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.adapters.exec_commands import ExecCommand

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"

ScalableKind = Literal["Deployment", "StatefulSet"]


class Fact(BaseModel):
    """Base of every adapter result: immutable, and refusing unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------
# Shared pieces


class ObjectRef(Fact):
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None


class OwnerRef(Fact):
    kind: str
    name: str
    uid: str
    controller: bool = False


class Condition(Fact):
    """A status condition (pods, Deployments, HPAs, PDBs all share this shape)."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    last_update_time: datetime | None = None


class LabelSelector(Fact):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[str, ...] = ()  # rendered as selector terms: "tier in (a,b)"

    def render(self) -> str:
        """The selector string kubectl would send (`app=x,tier in (a,b)`)."""
        terms = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        return ",".join([*terms, *self.match_expressions])


# ---------------------------------------------------------------------------------------------
# Pods


class Termination(Fact):
    exit_code: int
    reason: str | None = None
    message: str | None = None
    signal: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ContainerState(Fact):
    """Exactly one of waiting / running / terminated, as the kubelet reports it."""

    state: Literal["waiting", "running", "terminated", "unknown"]
    reason: str | None = None  # waiting or terminated reason
    message: str | None = None
    started_at: datetime | None = None  # running since
    terminated: Termination | None = None


class ContainerStatus(Fact):
    name: str
    image: str
    ready: bool
    started: bool | None = None
    restart_count: int
    state: ContainerState
    last_termination: Termination | None = None
    init: bool = False


BACK_OFF = "CrashLoopBackOff"


class PodRow(Fact):
    """One row of `kubectl get pods -o wide`, plus what judging a crash loop over a window needs
    (`tasks.diagnoses.crashes`), summarised from the container statuses: what a sweep over
    thousands of pods reads, built straight from the list's JSON (`wire.pod_row`)."""

    name: str
    namespace: str
    uid: str
    phase: str
    status: str  # the STATUS column exactly as kubectl prints it
    ready_containers: int
    total_containers: int
    restarts: int
    last_restart_at: datetime | None = None
    waiting_reason: str | None = None  # first container waiting with a reason (CrashLoopBackOff)
    node: str | None = None
    ip: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    owner: OwnerRef | None = None
    created_at: datetime | None = None
    deleting: bool = False
    ready_since: datetime | None = None  # Ready condition's transition time while Ready
    # The crash summary (a Pod built by hand derives it from its container statuses):
    max_restarts: int = 0  # the most restarts of one container
    container_failing: bool = False  # a container in CrashLoopBackOff, or just died with an error
    last_crash_at: datetime | None = None  # when a container last died with an error
    running_since: datetime | None = None  # the earliest start of a running container
    last_run_seconds: float | None = None  # how long the most recent terminated run lasted

    @property
    def ready(self) -> str:
        """The READY column: `x/y`."""
        return f"{self.ready_containers}/{self.total_containers}"

    @property
    def is_ready(self) -> bool:
        return self.ready_since is not None or (
            self.total_containers > 0 and self.ready_containers == self.total_containers
        )


CRASH_SUMMARY = frozenset(
    {"max_restarts", "container_failing", "last_crash_at", "running_since", "last_run_seconds"}
)


class Pod(PodRow):
    """A pod's row and its details: container statuses, terminations, claims, env."""

    last_termination: Termination | None = None  # most recent one across containers
    containers: tuple[str, ...] = ()  # spec container names, in order
    default_container: str | None = None
    container_statuses: tuple[ContainerStatus, ...] = ()
    claims: tuple[str, ...] = ()  # PersistentVolumeClaims its volumes mount
    env: dict[str, str] = Field(default_factory=dict)  # literal env values of its first container

    @model_validator(mode="after")
    def _summarise(self) -> Pod:
        """A Pod built from its details (tests' factories) gets the row's crash summary from
        them; `wire.pod` passes the summary it computed from the same JSON."""
        if CRASH_SUMMARY & self.model_fields_set:
            return self
        summary = crash_summary(self.container_statuses, self.last_termination)
        for name, value in summary.items():
            object.__setattr__(self, name, value)
        return self


def _seconds(t: Termination | None) -> float | None:
    if t is None or t.started_at is None or t.finished_at is None:
        return None
    return (t.finished_at - t.started_at).total_seconds()


def crash_summary(
    statuses: tuple[ContainerStatus, ...], last: Termination | None
) -> dict[str, object]:
    """The row's crash summary from typed container statuses (`wire.pod_row` computes the
    same from the JSON; tests hold the two to each other)."""
    ends = [last] if last is not None else []
    for c in statuses:
        ends += [t for t in (c.last_termination, c.state.terminated) if t is not None]
    crashes = [t.finished_at for t in ends if t.exit_code != 0 and t.finished_at is not None]
    running = [
        c.state.started_at
        for c in statuses
        if c.state.state == "running" and c.state.started_at is not None
    ]
    return {
        "max_restarts": max((c.restart_count for c in statuses), default=0),
        "container_failing": any(
            (c.state.state == "waiting" and c.state.reason == BACK_OFF)
            or (
                c.state.state == "terminated"
                and c.state.terminated is not None
                and c.state.terminated.exit_code != 0
            )
            for c in statuses
        ),
        "last_crash_at": max(crashes, default=None),
        "running_since": min(running, default=None),
        "last_run_seconds": _seconds(last),
    }


class Event(Fact):
    name: str
    namespace: str | None = None
    type: str | None = None
    reason: str | None = None
    message: str | None = None
    count: int = 1
    involved: ObjectRef
    source: str | None = None
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    event_time: datetime | None = None
    series_last_observed: datetime | None = None
    series_count: int | None = None
    created_at: datetime | None = None

    @property
    def last_seen(self) -> datetime | None:
        """When the event last happened: lastTimestamp, else (for events.k8s.io-era recorders,
        which leave it null) the series' last observation, else eventTime, firstTimestamp and
        creationTimestamp. The series comes before eventTime because eventTime is the series'
        first occurrence (kubectl events' own eventTime() makes the same choice)."""
        return (
            self.last_timestamp
            or self.series_last_observed
            or self.event_time
            or self.first_timestamp
            or self.created_at
        )


class PodDescription(Fact):
    """The facts `kubectl describe pod` shows: conditions, container states and events."""

    pod: Pod
    conditions: tuple[Condition, ...]
    init_containers: tuple[ContainerStatus, ...]
    containers: tuple[ContainerStatus, ...]
    events: tuple[Event, ...]


class DeploymentLogs(Fact):
    """`kubectl logs deploy/X`: which pod kubectl would pick, and its log."""

    namespace: str
    deployment: str
    pod: str
    container: str
    pods_found: int
    text: str | None


class ContainerUsage(Fact):
    name: str
    cpu_millicores: int
    memory_bytes: int


class PodUsage(Fact):
    """One row of `kubectl top pods`."""

    name: str
    namespace: str
    cpu_millicores: int
    memory_bytes: int
    window: str | None = None
    timestamp: datetime | None = None
    containers: tuple[ContainerUsage, ...] = ()


# ---------------------------------------------------------------------------------------------
# Workloads


class EnvVar(Fact):
    name: str
    value: str | None = None
    value_from: str | None = None  # "secretKeyRef:name/key" and the like; not revertible as text


class ContainerSpec(Fact):
    name: str
    image: str | None = None
    env: tuple[EnvVar, ...] = ()

    def env_var(self, name: str) -> EnvVar | None:
        return next((e for e in self.env if e.name == name), None)


class Deployment(Fact):
    name: str
    namespace: str
    uid: str | None = None
    generation: int = 0
    observed_generation: int = 0
    replicas: int | None = None  # spec.replicas
    status_replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    paused: bool = False
    progress_deadline_seconds: int | None = None
    selector: LabelSelector = Field(default_factory=LabelSelector)
    template_annotations: dict[str, str] = Field(default_factory=dict)
    containers: tuple[ContainerSpec, ...] = ()
    conditions: tuple[Condition, ...] = ()
    resource_version: str | None = None

    @property
    def restarted_at(self) -> str | None:
        return self.template_annotations.get(RESTARTED_AT_ANNOTATION)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class RolloutState(StrEnum):
    PENDING = "pending"  # the controller has not observed the latest spec yet
    PROGRESSING = "progressing"
    COMPLETE = "complete"
    FAILED = "failed"  # ProgressDeadlineExceeded


class RolloutStatus(Fact):
    """kubectl rollout status's verdict and message for one observation."""

    deployment: str
    state: RolloutState
    message: str
    generation: int = 0
    observed_generation: int = 0

    @property
    def done(self) -> bool:
        return self.state is RolloutState.COMPLETE


class StatefulSet(Fact):
    name: str
    namespace: str
    uid: str | None = None
    replicas: int | None = None
    status_replicas: int = 0
    ready_replicas: int = 0
    current_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    current_revision: str | None = None
    update_revision: str | None = None
    generation: int = 0
    observed_generation: int = 0
    selector: LabelSelector = Field(default_factory=LabelSelector)
    service_name: str | None = None
    volume_claim_templates: tuple[str, ...] = ()


class PersistentVolumeClaim(Fact):
    name: str
    namespace: str
    phase: str | None = None
    capacity: str | None = None  # as the API writes it, e.g. "10Gi"
    capacity_bytes: int | None = None
    requested: str | None = None
    storage_class: str | None = None
    volume_name: str | None = None
    access_modes: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)


class PodDisruptionBudget(Fact):
    name: str
    namespace: str
    min_available: str | None = None  # int or percentage, as written
    max_unavailable: str | None = None
    selector: LabelSelector = Field(default_factory=LabelSelector)
    disruptions_allowed: int = 0
    current_healthy: int = 0
    desired_healthy: int = 0
    expected_pods: int = 0
    conditions: tuple[Condition, ...] = ()


class Scale(Fact):
    """The scale subresource of a Deployment or StatefulSet."""

    kind: ScalableKind
    name: str
    namespace: str
    replicas: int  # spec
    current_replicas: int  # status
    selector: str | None = None


# ---------------------------------------------------------------------------------------------
# Autoscaling


class HpaMetric(Fact):
    """A metric target or its current value, summarised as `kubectl describe hpa` prints it."""

    type: str
    name: str | None = None  # resource / metric name
    target_type: str | None = None  # Utilization / AverageValue / Value
    value: str | None = None  # e.g. "60%" or "500m"


class HpaPolicy(Fact):
    type: str
    value: int
    period_seconds: int


class HpaScalingRules(Fact):
    stabilization_window_seconds: int | None = None
    select_policy: str | None = None
    policies: tuple[HpaPolicy, ...] = ()


class HpaBehavior(Fact):
    scale_up: HpaScalingRules | None = None
    scale_down: HpaScalingRules | None = None


class Rescale(Fact):
    """One (possibly aggregated) SuccessfulRescale event."""

    new_size: int
    reason: str
    count: int = 1
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    message: str


class HorizontalPodAutoscaler(Fact):
    name: str
    namespace: str
    uid: str | None = None
    target: ObjectRef
    min_replicas: int | None = None
    max_replicas: int
    current_replicas: int | None = None
    desired_replicas: int
    last_scale_time: datetime | None = None
    metrics: tuple[HpaMetric, ...] = ()
    current_metrics: tuple[HpaMetric, ...] = ()
    behavior: HpaBehavior | None = None  # None: spec.behavior is unset (server defaults apply)
    conditions: tuple[Condition, ...] = ()
    rescales: tuple[Rescale, ...] = ()  # oldest first, by lastTimestamp


# ---------------------------------------------------------------------------------------------
# Networking


class EndpointAddress(Fact):
    ip: str
    ready: bool
    pod: str | None = None  # targetRef name when it is a Pod
    node: str | None = None
    serving: bool | None = None
    terminating: bool | None = None


class PortSpec(Fact):
    port: int
    name: str | None = None
    protocol: str | None = None
    target_port: str | None = None
    node_port: int | None = None


class Endpoints(Fact):
    name: str
    namespace: str
    addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[PortSpec, ...] = ()

    @property
    def ready(self) -> tuple[EndpointAddress, ...]:
        return tuple(a for a in self.addresses if a.ready)

    @property
    def not_ready(self) -> tuple[EndpointAddress, ...]:
        return tuple(a for a in self.addresses if not a.ready)


class EndpointSlice(Fact):
    name: str
    namespace: str
    service: str | None = None
    address_type: str
    endpoints: tuple[EndpointAddress, ...] = ()
    ports: tuple[PortSpec, ...] = ()


class Service(Fact):
    name: str
    namespace: str
    type: str | None = None
    cluster_ip: str | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    ports: tuple[PortSpec, ...] = ()


class PolicyRule(Fact):
    """One ingress or egress rule: ports like "TCP/443", peers like "podSelector: app=web"."""

    ports: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()


class NetworkPolicy(Fact):
    name: str
    namespace: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...] = ()
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()


class IngressPath(Fact):
    host: str | None = None
    path: str | None = None
    path_type: str | None = None
    service: str | None = None
    port: str | None = None


class Ingress(Fact):
    name: str
    namespace: str
    class_name: str | None = None
    hosts: tuple[str, ...] = ()
    paths: tuple[IngressPath, ...] = ()
    annotations: dict[str, str] = Field(default_factory=dict)
    load_balancer: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Mutations: what an audit row needs, before and after


class RestartResult(Fact):
    namespace: str
    deployment: str
    restarted_at: str  # the annotation value written (RFC 3339)
    previous_restarted_at: str | None = None
    previous_generation: int
    generation: int  # as the server returned it (the would-be value on a dry run)
    dry_run: bool


class ScaleResult(Fact):
    kind: ScalableKind
    namespace: str
    name: str
    previous: int
    requested: int
    replicas: int  # spec.replicas in the server's answer
    dry_run: bool


class HpaWindowChange(Fact):
    namespace: str
    hpa: str
    previous: int | None  # None: scaleUp stabilization window was unset
    requested: int | None  # None: remove the field (put back "unset")
    result: int | None  # the window in the server's answer
    behavior_existed: bool
    dry_run: bool


class EnvChange(Fact):
    """A `kubectl set env` on one Deployment, with what each container had before."""

    namespace: str
    deployment: str
    variable: str
    value: str | None  # None: the variable was removed
    previous: dict[str, EnvVar | None]  # per container; None: it was not set
    containers: tuple[str, ...]
    generation: int
    dry_run: bool

    @property
    def previous_value(self) -> str | None:
        """The previous plain value in the first changed container (what a revert writes)."""
        first = self.previous.get(self.containers[0]) if self.containers else None
        return first.value if first is not None else None

    @property
    def changed(self) -> bool:
        return any(
            (p.value if p is not None else None) != self.value
            or (p is not None and p.value_from is not None)
            for p in self.previous.values()
        )


class DeletedPod(Fact):
    name: str
    namespace: str
    uid: str
    node: str | None = None
    phase: str | None = None
    dry_run: bool


class ExecResult(Fact):
    namespace: str
    pod: str
    container: str | None
    command: tuple[str, ...]
    stdout: str
    stderr: str
    exit_code: int | None  # None: no status arrived before the timeout
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# ---------------------------------------------------------------------------------------------
# The protocol


class ClusterReader(Protocol):
    """What the runbook reads from the cluster: what probes, diagnoses and verifies are handed.
    `exec` is here because the runbook's probes exec read-only commands (curl, redis-cli, celery
    inspect); nothing in this view changes an object."""

    def close(self) -> None: ...

    # pods
    def pods(self, namespace: str, selector: str | None = None) -> tuple[Pod, ...]: ...
    def pod_rows(self, namespace: str, selector: str | None = None) -> tuple[PodRow, ...]: ...
    def pod(self, namespace: str, name: str) -> Pod | None: ...
    def workload_of(self, pod: Pod) -> OwnerRef | None: ...
    def describe_pod(self, namespace: str, name: str) -> PodDescription | None: ...
    def pod_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
    ) -> str | None: ...
    def deployment_logs(
        self,
        namespace: str,
        deployment: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
    ) -> DeploymentLogs | None: ...
    def events(self, namespace: str, field_selector: str | None = None) -> tuple[Event, ...]: ...
    def top_pods(
        self,
        namespace: str,
        selector: str | None = None,
        sort_by: Literal["cpu", "memory"] | None = None,
    ) -> tuple[PodUsage, ...]: ...
    def exec(
        self,
        namespace: str,
        pod: str,
        command: ExecCommand,
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult: ...
    def exec_in_deployment(
        self,
        namespace: str,
        deployment: str,
        command: ExecCommand,
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult: ...

    # workloads
    def deployment(self, namespace: str, name: str) -> Deployment | None: ...
    def deployments(self, namespace: str) -> tuple[Deployment, ...]: ...
    def rollout_status(self, namespace: str, name: str) -> RolloutStatus | None: ...
    def wait_for_rollout(self, namespace: str, name: str, timeout: float) -> RolloutStatus: ...
    def scale(self, namespace: str, kind: ScalableKind, name: str) -> Scale | None: ...
    def statefulset(self, namespace: str, name: str) -> StatefulSet | None: ...
    def pvc(self, namespace: str, name: str) -> PersistentVolumeClaim | None: ...
    def pvcs(
        self, namespace: str, selector: str | None = None
    ) -> tuple[PersistentVolumeClaim, ...]: ...
    def pod_disruption_budget(self, namespace: str, name: str) -> PodDisruptionBudget | None: ...
    def pod_disruption_budgets(self, namespace: str) -> tuple[PodDisruptionBudget, ...]: ...

    # autoscaling
    def hpa(self, namespace: str, name: str) -> HorizontalPodAutoscaler | None: ...
    def hpa_rescales(self, namespace: str, name: str) -> tuple[Rescale, ...]: ...

    # networking
    def endpoints(self, namespace: str, name: str) -> Endpoints | None: ...
    def all_endpoints(self, namespace: str) -> tuple[Endpoints, ...]: ...
    def endpoint_slices(self, namespace: str, service: str) -> tuple[EndpointSlice, ...]: ...
    def service(self, namespace: str, name: str) -> Service | None: ...
    def services(self, namespace: str) -> tuple[Service, ...]: ...
    def network_policies(self, namespace: str) -> tuple[NetworkPolicy, ...]: ...
    def ingresses(self, namespace: str) -> tuple[Ingress, ...]: ...


class Cluster(ClusterReader, Protocol):
    """Every cluster call the runbook makes, the changes too: only the gate holds one
    (`tasks.changes.writer`). `KubernetesCluster` is the implementation."""

    def delete_pod(self, namespace: str, name: str, *, dry_run: bool) -> DeletedPod | None: ...
    def delete_pods(
        self, namespace: str, selector: str, *, dry_run: bool
    ) -> tuple[DeletedPod, ...]: ...
    def rollout_restart(self, namespace: str, name: str, *, dry_run: bool) -> RestartResult: ...
    def set_replicas(
        self, namespace: str, kind: ScalableKind, name: str, replicas: int, *, dry_run: bool
    ) -> ScaleResult: ...
    def set_env(
        self,
        namespace: str,
        deployment: str,
        variable: str,
        value: str | None,
        *,
        container: str | None = None,
        dry_run: bool,
    ) -> EnvChange: ...
    def set_hpa_scale_up_window(
        self, namespace: str, name: str, seconds: int | None, *, dry_run: bool
    ) -> HpaWindowChange: ...


# ---------------------------------------------------------------------------------------------
# The read-only view


class ReadOnlyCluster:
    """The reads of a `Cluster` and nothing else: what `tasks.connection.cluster()` hands out.

    A different object from the writer it reads through (sharing its connection pool), with
    exactly the `ClusterReader` methods: no cast or attribute lookup on it finds a change
    (`delete_pod`, `rollout_restart`, ...), so only the gate, which gets the writer from
    `tasks.changes.writer`, can change the cluster. `exec` and `exec_in_deployment` are reads
    here because the runbook's probes exec read-only commands.

    `close` does not close the shared pool (the writer uses it too):
    `tasks.connection.close_all` does, once per process.
    """

    __slots__ = ("_reads",)

    def __init__(self, pooled: ClusterReader) -> None:
        self._reads = pooled

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def close(self) -> None:
        """Nothing to release: the pool belongs to the process (`tasks.connection.close_all`)."""

    # pods
    def pods(self, namespace: str, selector: str | None = None) -> tuple[Pod, ...]:
        return self._reads.pods(namespace, selector)

    def pod_rows(self, namespace: str, selector: str | None = None) -> tuple[PodRow, ...]:
        return self._reads.pod_rows(namespace, selector)

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self._reads.pod(namespace, name)

    def workload_of(self, pod: Pod) -> OwnerRef | None:
        return self._reads.workload_of(pod)

    def describe_pod(self, namespace: str, name: str) -> PodDescription | None:
        return self._reads.describe_pod(namespace, name)

    def pod_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
    ) -> str | None:
        return self._reads.pod_logs(
            namespace,
            name,
            container=container,
            tail=tail,
            previous=previous,
            since_seconds=since_seconds,
        )

    def deployment_logs(
        self,
        namespace: str,
        deployment: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
    ) -> DeploymentLogs | None:
        return self._reads.deployment_logs(
            namespace, deployment, container=container, tail=tail, previous=previous
        )

    def events(self, namespace: str, field_selector: str | None = None) -> tuple[Event, ...]:
        return self._reads.events(namespace, field_selector)

    def top_pods(
        self,
        namespace: str,
        selector: str | None = None,
        sort_by: Literal["cpu", "memory"] | None = None,
    ) -> tuple[PodUsage, ...]:
        return self._reads.top_pods(namespace, selector, sort_by)

    def exec(
        self,
        namespace: str,
        pod: str,
        command: ExecCommand,
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult:
        return self._reads.exec(namespace, pod, command, container=container, timeout=timeout)

    def exec_in_deployment(
        self,
        namespace: str,
        deployment: str,
        command: ExecCommand,
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult:
        return self._reads.exec_in_deployment(
            namespace, deployment, command, container=container, timeout=timeout
        )

    # workloads
    def deployment(self, namespace: str, name: str) -> Deployment | None:
        return self._reads.deployment(namespace, name)

    def deployments(self, namespace: str) -> tuple[Deployment, ...]:
        return self._reads.deployments(namespace)

    def rollout_status(self, namespace: str, name: str) -> RolloutStatus | None:
        return self._reads.rollout_status(namespace, name)

    def wait_for_rollout(self, namespace: str, name: str, timeout: float) -> RolloutStatus:
        return self._reads.wait_for_rollout(namespace, name, timeout)

    def scale(self, namespace: str, kind: ScalableKind, name: str) -> Scale | None:
        return self._reads.scale(namespace, kind, name)

    def statefulset(self, namespace: str, name: str) -> StatefulSet | None:
        return self._reads.statefulset(namespace, name)

    def pvc(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return self._reads.pvc(namespace, name)

    def pvcs(
        self, namespace: str, selector: str | None = None
    ) -> tuple[PersistentVolumeClaim, ...]:
        return self._reads.pvcs(namespace, selector)

    def pod_disruption_budget(self, namespace: str, name: str) -> PodDisruptionBudget | None:
        return self._reads.pod_disruption_budget(namespace, name)

    def pod_disruption_budgets(self, namespace: str) -> tuple[PodDisruptionBudget, ...]:
        return self._reads.pod_disruption_budgets(namespace)

    # autoscaling
    def hpa(self, namespace: str, name: str) -> HorizontalPodAutoscaler | None:
        return self._reads.hpa(namespace, name)

    def hpa_rescales(self, namespace: str, name: str) -> tuple[Rescale, ...]:
        return self._reads.hpa_rescales(namespace, name)

    # networking
    def endpoints(self, namespace: str, name: str) -> Endpoints | None:
        return self._reads.endpoints(namespace, name)

    def all_endpoints(self, namespace: str) -> tuple[Endpoints, ...]:
        return self._reads.all_endpoints(namespace)

    def endpoint_slices(self, namespace: str, service: str) -> tuple[EndpointSlice, ...]:
        return self._reads.endpoint_slices(namespace, service)

    def service(self, namespace: str, name: str) -> Service | None:
        return self._reads.service(namespace, name)

    def services(self, namespace: str) -> tuple[Service, ...]:
        return self._reads.services(namespace)

    def network_policies(self, namespace: str) -> tuple[NetworkPolicy, ...]:
        return self._reads.network_policies(namespace)

    def ingresses(self, namespace: str) -> tuple[Ingress, ...]:
        return self._reads.ingresses(namespace)
