"""What a mutation is (`Change`) and what it did or would do (`ChangeRecord`).

A Change is a typed request: the action, the target, and the one adapter call that performs it.
Each kind also knows how to read the facts before, how to tell that it is already in effect,
and what a revert would write. The gate (`tasks.changes.gate`) is the only caller of `perform`:
it adds the lock, the dry run and the exactly-once bookkeeping around these three questions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from tasks.adapters.cluster import Cluster, Pod, ScalableKind
from tasks.adapters.errors import PermanentError
from tasks.adapters.http_endpoints import ControlPlaneScale

Fact = str | int | None


class ActionKind(StrEnum):
    RESTART = "rollout-restart"
    SCALE = "scale"
    HPA_WINDOW = "patch-hpa-scale-up-window"
    SET_ENV = "set-env"
    DELETE_PODS = "delete-pods"
    CONTROL_PLANE_SCALE = "control-plane-scale"


class ChangeStatus(StrEnum):
    PLANNED = "planned"  # dry run: the server validated it, nothing changed
    APPLIED = "applied"
    ALREADY_DONE = "already-done"  # the target already is as wanted: nothing was sent
    REFUSED = "refused"  # a guard stopped it: nothing was sent (its verdicts say which)


class Target(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> str:
        """What the lock and an audit row name: `Deployment/alphaswarm/alphaswarm-core`."""
        return f"{self.kind}/{self.namespace}/{self.name}"


# What an env var's record says when no plain value can be written back.
FROM_REF = "<from>"  # a valueFrom reference (a Secret, a ConfigMap, a field)
MIXED = "<mixed>"  # the containers changed had different values


class Revert(BaseModel):
    """What to write back to undo exactly this change; `value` None means "unset it"."""

    model_config = ConfigDict(frozen=True)

    action: ActionKind
    target: Target
    value: Fact
    variable: str | None = None  # set-env only
    container: str | None = None  # set-env only; None: every container (they all had `value`)


class Verdict(BaseModel):
    """One guard's answer about one change (`tasks.changes.guards`)."""

    model_config = ConfigDict(frozen=True)

    guard: str  # kill-switch, scope, lock, cooldown, circuit-breaker, budget, blast-radius
    passed: bool
    detail: str


class Disruption(BaseModel):
    """How many of one workload's ready pods a change takes down at once (the blast radius).
    A change reports one per owning workload it touches (`Change.disruption`)."""

    model_config = ConfigDict(frozen=True)

    workload: str  # the owning workload's key, Deployment/ns/name (a bare pod: Pod/ns/name)
    taken: int  # ready pods the change takes down
    ready: int  # ready pods the workload has now


class ChangeRecord(BaseModel):
    """The plan (dry run) or the result (applied), with the facts before and after."""

    model_config = ConfigDict(frozen=True)

    key: str
    action: ActionKind
    target: Target
    status: ChangeStatus
    dry_run: bool
    summary: str
    before: dict[str, Fact] = Field(default_factory=dict)
    after: dict[str, Fact] = Field(default_factory=dict)
    revert: Revert | None = None
    note: str = ""
    at: datetime
    verdicts: tuple[Verdict, ...] = ()
    # Set when the cooldown found this very change made moments ago by another run: when that
    # one took effect. A verification measures from the change, not from this record.
    done_earlier_at: datetime | None = None

    @property
    def changed_anything(self) -> bool:
        return self.status is ChangeStatus.APPLIED

    @property
    def since(self) -> datetime:
        """When the change took effect: what "no crash since the fix" counts from."""
        return self.done_earlier_at or self.at


class Performed(BaseModel):
    """An adapter call's answer, reduced to what a record shows."""

    model_config = ConfigDict(frozen=True)

    after: dict[str, Fact]
    note: str = ""


class ControlPlaneApi(Protocol):
    def scale_via_control_plane(
        self, base_url: str, token: str, deployment: str, replicas: int
    ) -> ControlPlaneScale: ...


@dataclass(frozen=True)
class Reach:
    """The adapters a change may use; the control plane only for control-plane changes.

    The token is a plain string only here, on its way into one request; it is never a field of
    a record, a log line or a task parameter.
    """

    cluster: Cluster
    control_plane: ControlPlaneApi | None = None
    control_plane_url: str = ""
    control_plane_token: str = field(default="", repr=False)


class Change(BaseModel, ABC):
    """One mutation. Subclasses are the runbook's verbs."""

    model_config = ConfigDict(frozen=True)

    action: ActionKind
    target: Target
    reason: str = ""

    @abstractmethod
    def observe(self, reach: Reach) -> dict[str, Fact]:
        """The facts before: read once per change, kept across retries by the gate."""

    @abstractmethod
    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        """True when the target already is as this change wants (`since`: first attempt)."""

    @abstractmethod
    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        """The one adapter call; dry_run asks the server to validate without persisting."""

    @abstractmethod
    def describe(self) -> str: ...

    def revert_for(self, before: dict[str, Fact]) -> Revert | None:
        return None

    def workloads(self, reach: Reach) -> tuple[str, ...]:
        """The owning workloads it moves (what the lease is keyed on): its target, or for a pod
        change the Deployment, StatefulSet or bare pod each pod belongs to."""
        return (self.target.key,)

    def disruption(self, reach: Reach, before: dict[str, Fact]) -> tuple[Disruption, ...]:
        """The ready pods it takes down at once, one per owning workload; none for a change
        that takes none down (a rolling restart keeps to maxUnavailable and the PDB)."""
        return ()


def _require(value: object, what: str) -> None:
    if value is None:
        raise PermanentError(f"{what} not found")


def owning_workloads(reach: Reach, pods: tuple[Pod, ...] | list[Pod]) -> dict[str, list[Pod]]:
    """`pods` by the workload that owns each: pod -> ReplicaSet -> Deployment (every ReplicaSet
    of a Deployment mid-rollout is one workload), pod -> StatefulSet; a bare pod is its own."""
    by_replica_set: dict[str, str] = {}
    grouped: dict[str, list[Pod]] = {}
    for pod in pods:
        owner, ns = pod.owner, pod.namespace
        if owner is None:
            key = f"Pod/{ns}/{pod.name}"
        elif owner.kind == "ReplicaSet":
            if owner.name not in by_replica_set:
                found = reach.cluster.workload_of(pod) or owner
                by_replica_set[owner.name] = f"{found.kind}/{ns}/{found.name}"
            key = by_replica_set[owner.name]
        else:
            key = f"{owner.kind}/{ns}/{owner.name}"
        grouped.setdefault(key, []).append(pod)
    return grouped


def _scale_down(
    change: Change, reach: Reach, before: dict[str, Fact], replicas: int
) -> tuple[Disruption, ...]:
    """A scale to fewer replicas takes down the ready pods beyond the new count (the controller
    removes pods that are not ready first): reported against the workload's ready pods now."""
    wanted = before.get("replicas")
    if not isinstance(wanted, int) or replicas >= wanted:
        return ()
    target = change.target
    kind: ScalableKind = "StatefulSet" if target.kind == "StatefulSet" else "Deployment"
    # Only the pods the workload's own selector matches (every pod it owns does): the list, and
    # the ReplicaSet reads that find each pod's owner, stay the workload's size, not the
    # namespace's. No selector known: every pod of the namespace, each by its owner.
    scale = reach.cluster.scale(target.namespace, kind, target.name)
    selector = scale.selector if scale is not None else None
    pods = reach.cluster.pods(target.namespace, selector)
    members = owning_workloads(reach, pods).get(target.key, [])
    ready = sum(1 for p in members if p.is_ready and not p.deleting)
    return (Disruption(workload=target.key, taken=max(ready - replicas, 0), ready=ready),)


class RestartDeployment(Change):
    action: ActionKind = ActionKind.RESTART

    def observe(self, reach: Reach) -> dict[str, Fact]:
        found = reach.cluster.deployment(self.target.namespace, self.target.name)
        _require(found, f"deployment {self.target.namespace}/{self.target.name}")
        assert found is not None
        return {"restartedAt": found.restarted_at, "generation": found.generation}

    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        """Done when the restartedAt annotation moved on since our first attempt began.

        The annotation has whole seconds, so a restart written in the same second as `since`
        counts; kubectl's own "restarted within the past second" refusal makes that safe.
        """
        stamp = now.get("restartedAt")
        if not isinstance(stamp, str) or stamp == before.get("restartedAt"):
            return False
        try:
            written = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return False
        return written >= since.replace(microsecond=0)

    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        result = reach.cluster.rollout_restart(
            self.target.namespace, self.target.name, dry_run=dry_run
        )
        return Performed(
            after={"restartedAt": result.restarted_at, "generation": result.generation}
        )

    def describe(self) -> str:
        return f"kubectl rollout restart -n {self.target.namespace} deployment/{self.target.name}"


class ScaleWorkload(Change):
    action: ActionKind = ActionKind.SCALE
    replicas: int = Field(ge=0)

    def _kind(self) -> ScalableKind:
        return "StatefulSet" if self.target.kind == "StatefulSet" else "Deployment"

    def observe(self, reach: Reach) -> dict[str, Fact]:
        found = reach.cluster.scale(self.target.namespace, self._kind(), self.target.name)
        _require(found, f"{self.target.kind} {self.target.namespace}/{self.target.name}")
        assert found is not None
        return {"replicas": found.replicas}

    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        return now.get("replicas") == self.replicas

    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        result = reach.cluster.set_replicas(
            self.target.namespace, self._kind(), self.target.name, self.replicas, dry_run=dry_run
        )
        return Performed(after={"replicas": result.replicas})

    def describe(self) -> str:
        kind = self.target.kind.lower()
        return (
            f"kubectl scale -n {self.target.namespace} {kind}/{self.target.name} "
            f"--replicas={self.replicas}"
        )

    def revert_for(self, before: dict[str, Fact]) -> Revert | None:
        return Revert(action=ActionKind.SCALE, target=self.target, value=before.get("replicas"))

    def disruption(self, reach: Reach, before: dict[str, Fact]) -> tuple[Disruption, ...]:
        return _scale_down(self, reach, before, self.replicas)


class PatchHpaWindow(Change):
    """Set the HPA's scale-up window, or (`seconds` None) remove it: the put-back of a window
    that was unset before, exactly as it was (no field, and no `behavior` left behind if the
    change created it)."""

    action: ActionKind = ActionKind.HPA_WINDOW
    seconds: int | None = Field(ge=0, le=3600)

    def observe(self, reach: Reach) -> dict[str, Fact]:
        found = reach.cluster.hpa(self.target.namespace, self.target.name)
        _require(found, f"hpa {self.target.namespace}/{self.target.name}")
        assert found is not None
        up = found.behavior.scale_up if found.behavior is not None else None
        return {"scaleUpWindowSeconds": up.stabilization_window_seconds if up else None}

    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        return now.get("scaleUpWindowSeconds") == self.seconds

    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        result = reach.cluster.set_hpa_scale_up_window(
            self.target.namespace, self.target.name, self.seconds, dry_run=dry_run
        )
        return Performed(after={"scaleUpWindowSeconds": result.result})

    def describe(self) -> str:
        where = f"kubectl patch hpa -n {self.target.namespace} {self.target.name}"
        if self.seconds is None:
            return f"{where} --type=json remove scaleUp.stabilizationWindowSeconds (unset before)"
        return f"{where} scaleUp.stabilizationWindowSeconds={self.seconds}"

    def revert_for(self, before: dict[str, Fact]) -> Revert | None:
        return Revert(
            action=ActionKind.HPA_WINDOW,
            target=self.target,
            value=before.get("scaleUpWindowSeconds"),
        )


class SetDeploymentEnv(Change):
    action: ActionKind = ActionKind.SET_ENV
    variable: str
    value: str | None  # None removes the variable
    container: str | None = None

    def observe(self, reach: Reach) -> dict[str, Fact]:
        found = reach.cluster.deployment(self.target.namespace, self.target.name)
        _require(found, f"deployment {self.target.namespace}/{self.target.name}")
        assert found is not None
        facts: dict[str, Fact] = {}
        for spec in found.containers:
            if self.container is None or spec.name == self.container:
                var = spec.env_var(self.variable)
                # A valueFrom reference is not a plain value: never "already done".
                facts[spec.name] = (
                    None if var is None else var.value if var.value_from is None else FROM_REF
                )
        if not facts:
            raise PermanentError(f"deployment {self.target.name} has no container {self.container}")
        return facts

    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        return bool(now) and all(v == self.value for v in now.values())

    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        result = reach.cluster.set_env(
            self.target.namespace,
            self.target.name,
            self.variable,
            self.value,
            container=self.container,
            dry_run=dry_run,
        )
        return Performed(
            after={c: self.value for c in result.containers}, note=f"generation {result.generation}"
        )

    def describe(self) -> str:
        setting = f"{self.variable}={self.value}" if self.value is not None else f"{self.variable}-"
        return f"kubectl set env -n {self.target.namespace} deploy/{self.target.name} {setting}"

    def revert_for(self, before: dict[str, Fact]) -> Revert | None:
        """One value to write back to the containers changed; MIXED when they had different
        ones (the audit row's `before` keeps each), which undo() will not guess at."""
        values = set(before.values())
        return Revert(
            action=ActionKind.SET_ENV,
            target=self.target,
            value=values.pop() if len(values) == 1 else MIXED,
            variable=self.variable,
            container=self.container,
        )


class DeletePods(Change):
    """Delete pods by name or selector; the pods are fixed at the first attempt (by uid).

    A retry must never delete the replacements the controller created after the first delete,
    so `before` lists `name -> uid` once and later attempts skip any pod whose uid changed.
    """

    action: ActionKind = ActionKind.DELETE_PODS
    selector: str | None = None
    pod: str | None = None

    def observe(self, reach: Reach) -> dict[str, Fact]:
        ns = self.target.namespace
        if self.pod is not None:
            found = reach.cluster.pod(ns, self.pod)
            return {self.pod: found.uid} if found is not None and not found.deleting else {}
        if not self.selector:
            raise PermanentError("delete pods needs a pod name or a non-empty selector")
        return {p.name: p.uid for p in reach.cluster.pods(ns, self.selector) if not p.deleting}

    def _remaining(self, reach: Reach, before: dict[str, Fact]) -> list[str]:
        left = []
        for name, uid in before.items():
            found = reach.cluster.pod(self.target.namespace, name)
            if found is not None and found.uid == uid and not found.deleting:
                left.append(name)
        return left

    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        return not any(now.get(name) == uid for name, uid in before.items())

    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        deleted: dict[str, Fact] = {}
        for name in self._remaining(reach, before) if not dry_run else list(before):
            gone = reach.cluster.delete_pod(self.target.namespace, name, dry_run=dry_run)
            deleted[name] = "deleted" if gone is not None else "already gone"
        return Performed(after=deleted)

    def describe(self) -> str:
        which = self.pod if self.pod is not None else f"-l {self.selector}"
        return f"kubectl delete pod -n {self.target.namespace} {which}"

    def _picked(self, reach: Reach) -> tuple[Pod, ...]:
        ns = self.target.namespace
        if self.pod is not None:
            found = reach.cluster.pod(ns, self.pod)
            return (found,) if found is not None else ()
        return reach.cluster.pods(ns, self.selector) if self.selector else ()

    def workloads(self, reach: Reach) -> tuple[str, ...]:
        """The workloads owning the pods it picks now (none picked: the target itself)."""
        return tuple(sorted(owning_workloads(reach, self._picked(reach)))) or (self.target.key,)

    def disruption(self, reach: Reach, before: dict[str, Fact]) -> tuple[Disruption, ...]:
        """Per owning workload of the doomed pods: its ready pods taken, of its ready pods."""
        pods = [p for p in reach.cluster.pods(self.target.namespace) if not p.deleting]
        doomed = {p.name for p in pods if before.get(p.name) == p.uid}
        found = []
        for workload, members in sorted(owning_workloads(reach, pods).items()):
            if not any(p.name in doomed for p in members):
                continue
            ready = [p for p in members if p.is_ready]
            taken = sum(1 for p in ready if p.name in doomed)
            found.append(Disruption(workload=workload, taken=taken, ready=len(ready)))
        return tuple(found)


class ScaleViaControlPlane(Change):
    """The control plane's scale (it lands an audit row). It has no dry run of its own, so a
    dry run asks Kubernetes for the same scale with dryRun=All as the plan."""

    action: ActionKind = ActionKind.CONTROL_PLANE_SCALE
    replicas: int = Field(ge=0)

    def observe(self, reach: Reach) -> dict[str, Fact]:
        found = reach.cluster.scale(self.target.namespace, "Deployment", self.target.name)
        _require(found, f"deployment {self.target.namespace}/{self.target.name}")
        assert found is not None
        return {"replicas": found.replicas}

    def is_done(self, now: dict[str, Fact], before: dict[str, Fact], since: datetime) -> bool:
        return now.get("replicas") == self.replicas

    def perform(self, reach: Reach, before: dict[str, Fact], *, dry_run: bool) -> Performed:
        if dry_run:
            planned = reach.cluster.set_replicas(
                self.target.namespace, "Deployment", self.target.name, self.replicas, dry_run=True
            )
            return Performed(
                after={"replicas": planned.replicas},
                note="the control plane has no dry run: planned with a Kubernetes dryRun=All scale",
            )
        if reach.control_plane is None:
            raise PermanentError("no control-plane adapter configured")
        answer = reach.control_plane.scale_via_control_plane(
            reach.control_plane_url, reach.control_plane_token, self.target.name, self.replicas
        )
        return Performed(
            after={"replicas": answer.replicas, "auditId": answer.audit_id},
            note=f"control plane answered HTTP {answer.status}",
        )

    def describe(self) -> str:
        return (
            f"PATCH /manage/deployments/{self.target.name}/scale?replicas={self.replicas} "
            "(control plane, audited)"
        )

    def revert_for(self, before: dict[str, Fact]) -> Revert | None:
        return Revert(action=ActionKind.SCALE, target=self.target, value=before.get("replicas"))

    def disruption(self, reach: Reach, before: dict[str, Fact]) -> tuple[Disruption, ...]:
        return _scale_down(self, reach, before, self.replicas)


def undo(revert: Revert, reason: str = "") -> Change:
    """The change that writes back what another overwrote (its record's `revert`). Refused,
    saying why, when the record cannot say exactly what was there."""
    target, value = revert.target, revert.value
    if revert.action is ActionKind.SCALE and isinstance(value, int):
        return ScaleWorkload(target=target, replicas=value, reason=reason)
    if revert.action is ActionKind.HPA_WINDOW and (value is None or isinstance(value, int)):
        # None: the window was unset before the change; putting it back removes the field.
        return PatchHpaWindow(target=target, seconds=value, reason=reason)
    if revert.action is ActionKind.SET_ENV and value in (FROM_REF, MIXED):
        raise PermanentError(
            f"{revert.variable} of {target.key} was "
            + ("a valueFrom reference" if value == FROM_REF else "different in each container")
            + " before the change: put it back by hand (the audit row's `before` has it)"
        )
    if revert.action is ActionKind.SET_ENV and revert.variable:
        return SetDeploymentEnv(
            target=target,
            variable=revert.variable,
            value=None if value is None else str(value),
            container=revert.container,
            reason=reason,
        )
    raise PermanentError(f"{revert.action} of {target.key}: the record cannot say what to put back")
