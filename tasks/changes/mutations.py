"""The runbook's changes as kubectl-like Prefect tasks. Each builds a typed Change and hands it
to the gate; none of them touches an adapter's mutating call directly.

Every verb takes `dry_run` explicitly (no default): a flow must say which it means. The change
key is the Prefect task run id, which stays the same across the task's retries, so a retried
verb lands at most once (see `tasks.changes.gate`). `approved_by` names the human who approved
this one change going over its budget or blast radius (`flows.approvals.approved_over_limits`);
it is a task parameter, so Prefect's run history shows it too.
"""

from __future__ import annotations

import uuid

from prefect.context import TaskRunContext

from tasks.changes.audit import StoreAudit
from tasks.changes.gate import apply_change
from tasks.changes.guards import StoreGuards
from tasks.changes.models import (
    Change,
    ChangeRecord,
    DeletePods,
    PatchHpaWindow,
    Reach,
    RestartDeployment,
    Revert,
    ScaleViaControlPlane,
    ScaleWorkload,
    SetDeploymentEnv,
    Target,
    undo,
)
from tasks.changes.writer import cluster_writer, control_plane_writer
from tasks.connection import settings as read_settings
from tasks.retries import mutation_task


def change_key() -> str:
    """The current task run's id (stable across its retries), else a fresh one."""
    context = TaskRunContext.get()
    if context is not None and context.task_run is not None:
        return str(context.task_run.id)
    return str(uuid.uuid4())


def _through_gate(
    change: Change, *, dry_run: bool, approved_by: str = "", control_plane: bool = False
) -> ChangeRecord:
    settings = read_settings()
    reach = Reach(cluster=cluster_writer())
    if control_plane:
        reach = Reach(
            cluster=reach.cluster,
            control_plane=control_plane_writer(),
            control_plane_url=settings.control_plane.base_url,
            control_plane_token=settings.control_plane.token.get_secret_value(),
        )
    url = settings.store.url.get_secret_value()
    return apply_change(
        change,
        key=change_key(),
        dry_run=dry_run,
        reach=reach,
        audit=StoreAudit(url),
        guards=StoreGuards(url, settings.safety, settings.workloads.scope),
        lock_timeout=settings.safety.lock_timeout_seconds,
        approved_by=approved_by,
    )


def _deployment(namespace: str, name: str) -> Target:
    return Target(kind="Deployment", namespace=namespace, name=name)


@mutation_task("restart-deployment")
def restart_deployment(
    namespace: str, deployment: str, *, dry_run: bool, reason: str = "", approved_by: str = ""
) -> ChangeRecord:
    """`kubectl rollout restart deployment/NAME`: new pods, one by one, under the PDB."""
    change = RestartDeployment(target=_deployment(namespace, deployment), reason=reason)
    return _through_gate(change, dry_run=dry_run, approved_by=approved_by)


@mutation_task("scale-deployment")
def scale_deployment(
    namespace: str,
    deployment: str,
    replicas: int,
    *,
    dry_run: bool,
    reason: str = "",
    approved_by: str = "",
) -> ChangeRecord:
    """`kubectl scale deployment/NAME --replicas=N` through the scale subresource."""
    change = ScaleWorkload(
        target=_deployment(namespace, deployment), replicas=replicas, reason=reason
    )
    return _through_gate(change, dry_run=dry_run, approved_by=approved_by)


@mutation_task("scale-via-control-plane")
def scale_via_control_plane(
    namespace: str,
    deployment: str,
    replicas: int,
    *,
    dry_run: bool,
    reason: str = "",
    approved_by: str = "",
) -> ChangeRecord:
    """The control plane's `PATCH /manage/deployments/NAME/scale?replicas=N` (an audit row).

    The record's `after["auditId"]` names the row. A PermanentError (bad token, unknown
    deployment) or a control plane that stays unreachable is the flow's cue to fall back to
    `scale_deployment`.
    """
    change = ScaleViaControlPlane(
        target=_deployment(namespace, deployment), replicas=replicas, reason=reason
    )
    return _through_gate(change, dry_run=dry_run, approved_by=approved_by, control_plane=True)


@mutation_task("patch-hpa-behavior")
def patch_hpa_behavior(
    namespace: str,
    hpa: str,
    scale_up_window_seconds: int,
    *,
    dry_run: bool,
    reason: str = "",
    approved_by: str = "",
) -> ChangeRecord:
    """`kubectl patch hpa NAME` setting behavior.scaleUp.stabilizationWindowSeconds."""
    change = PatchHpaWindow(
        target=Target(kind="HorizontalPodAutoscaler", namespace=namespace, name=hpa),
        seconds=scale_up_window_seconds,
        reason=reason,
    )
    return _through_gate(change, dry_run=dry_run, approved_by=approved_by)


@mutation_task("set-deployment-env")
def set_deployment_env(
    namespace: str,
    deployment: str,
    variable: str,
    value: str | None,
    *,
    dry_run: bool,
    container: str | None = None,
    reason: str = "",
    approved_by: str = "",
) -> ChangeRecord:
    """`kubectl set env deploy/NAME VAR=value` (`VAR-` when value is None)."""
    change = SetDeploymentEnv(
        target=_deployment(namespace, deployment),
        variable=variable,
        value=value,
        container=container,
        reason=reason,
    )
    return _through_gate(change, dry_run=dry_run, approved_by=approved_by)


@mutation_task("delete-pods")
def delete_pods(
    namespace: str,
    *,
    dry_run: bool,
    selector: str | None = None,
    pod: str | None = None,
    reason: str = "",
    approved_by: str = "",
) -> ChangeRecord:
    """`kubectl delete pod NAME` or `kubectl delete pod -l SELECTOR`: the controller recreates."""
    if (selector is None) == (pod is None):
        raise ValueError("delete_pods needs exactly one of selector or pod")
    target = Target(kind="Pod", namespace=namespace, name=pod or f"-l {selector}")
    change = DeletePods(target=target, selector=selector, pod=pod, reason=reason)
    return _through_gate(change, dry_run=dry_run, approved_by=approved_by)


@mutation_task("put-back")
def put_back(
    revert: Revert, *, dry_run: bool, reason: str = "", approved_by: str = ""
) -> ChangeRecord:
    """Write back what one change overwrote (its record's `revert`), through the same gate: the
    kill switch, scope, lock and limits apply, and the revert gets an audit row of its own."""
    return _through_gate(undo(revert, reason), dry_run=dry_run, approved_by=approved_by)
