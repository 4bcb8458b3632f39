"""Runbook F's promise, checked: "data persists in PVC", "StatefulSet brings it back".

A restart of a stateful pod is only a fix if the data is still there afterwards. Two facts say
so: the claim the pod had is still Bound to the same PersistentVolume, and the store answers the
same data marker through `kubectl exec` (`psql -tAc 'select count(*) from terraform_runs'` for
Postgres, `redis-cli dbsize` for Redis). A store that is down cannot answer before the restart,
so the marker before is best effort (None when unreadable) and the volume identity is the proof
that holds either way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tasks.adapters.cluster import PersistentVolumeClaim, Pod
from tasks.adapters.errors import PermanentError
from tasks.connection import cluster
from tasks.models.diagnosis import Diagnosis
from tasks.models.snapshots import StatefulSnapshot
from tasks.retries import NotYetHealthy, probe_task, verify_task
from tasks.verifies import VerifyFailed

POSTGRES_MARKER = ("psql", "-tAc", "select count(*) from terraform_runs")
REDIS_MARKER = ("redis-cli", "dbsize")


class DataMarker(BaseModel):
    """What the store answered to its marker command; `value` None when it could not answer."""

    model_config = ConfigDict(frozen=True)

    pod: str | None
    command: tuple[str, ...]
    value: str | None
    error: str = ""

    def describe(self) -> str:
        shown = self.value if self.value is not None else f"unreadable ({self.error})"
        return f"{' '.join(self.command)} in {self.pod or '(no pod)'}: {shown}"


class StoreAtRisk(BaseModel):
    """The pod(s) a runbook F restart deletes, and what must survive it."""

    model_config = ConfigDict(frozen=True)

    store: str  # "postgres" or "redis"
    namespace: str
    pod: str | None  # by name (redis-master-0) ...
    selector: str | None  # ... or by selector (-l app=postgres)
    command: tuple[str, ...]
    pod_uids: tuple[str, ...]
    claims: tuple[PersistentVolumeClaim, ...]


def store_at_risk(snapshot: StatefulSnapshot, diagnosis: Diagnosis) -> StoreAtRisk:
    """Which store the diagnosis restarts: a pod name is Redis, a selector is Postgres."""
    if diagnosis.name == snapshot.redis_pod_name:
        redis = snapshot.redis_pod
        return StoreAtRisk(
            store="redis",
            namespace=snapshot.namespace,
            pod=snapshot.redis_pod_name,
            selector=None,
            command=REDIS_MARKER,
            pod_uids=(redis.uid,) if redis is not None else (),
            claims=snapshot.redis_pvcs,
        )
    return StoreAtRisk(
        store="postgres",
        namespace=snapshot.namespace,
        pod=None,
        selector=diagnosis.selector or snapshot.postgres_selector,
        command=POSTGRES_MARKER,
        pod_uids=tuple(p.uid for p in snapshot.postgres_pods),
        claims=snapshot.postgres_pvcs,
    )


def _store_pod(at: StoreAtRisk) -> Pod | None:
    """The pod to exec in: the named one, else a live pod of the selector (ready ones first)."""
    c = cluster()
    if at.pod is not None:
        return c.pod(at.namespace, at.pod)
    live = [p for p in c.pods(at.namespace, at.selector) if not p.deleting]
    return next(iter(sorted(live, key=lambda p: not p.is_ready)), None)


def _read_marker(at: StoreAtRisk) -> DataMarker:
    pod = _store_pod(at)
    if pod is None:
        return DataMarker(pod=None, command=at.command, value=None, error="no pod")
    try:
        result = cluster().exec(at.namespace, pod.name, at.command)
    except PermanentError as exc:  # e.g. the container is not running: exec is refused
        return DataMarker(pod=pod.name, command=at.command, value=None, error=str(exc))
    if not result.ok:
        error = (result.stderr or result.stdout).strip().splitlines()
        return DataMarker(
            pod=pod.name,
            command=at.command,
            value=None,
            error=error[0] if error else f"exit {result.exit_code}",
        )
    return DataMarker(pod=pod.name, command=at.command, value=result.stdout.strip())


@probe_task("probe-data-marker")
def probe_data_marker(at: StoreAtRisk) -> DataMarker:
    """The store's data marker before the restart (None when the store cannot answer)."""
    return _read_marker(at)


class DataSurvived(BaseModel):
    model_config = ConfigDict(frozen=True)

    marker: DataMarker
    claims: tuple[str, ...]  # "name -> volume", unchanged

    def describe(self, before: DataMarker) -> str:
        volumes = ", ".join(self.claims) or "no claims"
        after = self.marker.describe()
        return f"same volumes ({volumes}); before: {before.describe()}; after: {after}"


@verify_task("verify-data-survived")
def verify_data_survived(at: StoreAtRisk, before: DataMarker) -> DataSurvived:
    """Each claim is still Bound to the same volume, and the store answers its marker, equal to
    the one read before the restart when that could be read."""
    c = cluster()
    kept = []
    for claim in at.claims:
        now = c.pvc(at.namespace, claim.name)
        if now is None:
            raise VerifyFailed(f"PVC {claim.name} is gone: the data did not survive")
        if now.volume_name != claim.volume_name:
            raise VerifyFailed(
                f"PVC {claim.name} is bound to {now.volume_name}, was {claim.volume_name}"
            )
        if now.phase != "Bound":
            raise NotYetHealthy(f"PVC {claim.name} is {now.phase}")
        kept.append(f"{claim.name} -> {now.volume_name}")
    marker = _read_marker(at)
    if marker.value is None:
        raise NotYetHealthy(f"the store does not answer yet: {marker.describe()}")
    if before.value is not None and marker.value != before.value:
        raise VerifyFailed(
            f"data marker changed across the restart: {before.value} -> {marker.value}"
        )
    return DataSurvived(marker=marker, claims=tuple(kept))
