"""Runbook F's promise, checked: "data persists in PVC", "StatefulSet brings it back".

A restart of a stateful pod is only a fix if the data is still there afterwards. Two facts say
so: the claim the pod had is still Bound to the same PersistentVolume, and the store answers the
same data marker through `kubectl exec` (`psql -U USER -d DATABASE -tAc 'select count(*) from
terraform_runs'` for Postgres, `redis-cli dbsize` for Redis, logged in with REMEDIATE_POSTGRES__*
and REMEDIATE_REDIS__PASSWORD, the passwords on the exec's stdin). A store that is down cannot
answer before the restart, so the marker before is best effort (None when unreadable) and the
volume identity is the proof that holds either way.

A check the store refuses for a reason waiting will not change (no such role or database, a
missing or wrong password, no client in the image) is inconclusive: it says so with the image's
own error, is never read as "the data is there", and is not polled until the verification runs
out.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from tasks.adapters.cluster import ExecResult, PersistentVolumeClaim, Pod
from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import (
    TERRAFORM_RUNS_COUNT,
    ExecCommand,
    psql_select,
    redis_cli,
)
from tasks.connection import cluster
from tasks.models.diagnosis import Diagnosis
from tasks.models.snapshots import StatefulSnapshot
from tasks.retries import NotYetHealthy, probe_task, verify_task
from tasks.settings import Settings
from tasks.verifies import VerifyFailed

# What psql and redis-cli say when the check itself cannot run, however long one waits.
CHECK_CANNOT_RUN = re.compile(
    r'FATAL:\s+(role|database) "[^"]*" does not exist'
    r"|password authentication failed|no password supplied"
    r"|NOAUTH|WRONGPASS|invalid password|invalid username-password"
    r"|executable file not found|command not found"
)
NOT_FOUND_EXIT_CODES = (126, 127)


def marker_command(store: str) -> ExecCommand:
    """The store's data marker, logged in as the settings say (a password on stdin)."""
    settings = Settings()
    if store == "redis":
        return redis_cli("dbsize", settings.redis.password)
    pg = settings.postgres
    return psql_select(
        TERRAFORM_RUNS_COUNT, user=pg.user, database=pg.database, password=pg.password
    )


def cannot_run(result: ExecResult) -> bool:
    """The store answered, and refused the check itself (credentials, no client)."""
    return result.exit_code in NOT_FOUND_EXIT_CODES or bool(
        CHECK_CANNOT_RUN.search(result.stderr + result.stdout)
    )


class DataMarker(BaseModel):
    """What the store answered to its marker command; `value` None when it could not answer."""

    model_config = ConfigDict(frozen=True)

    pod: str | None
    command: str  # as shown: no secret
    value: str | None
    error: str = ""
    # The check itself cannot run (no such role, no password, no client): not "not yet".
    inconclusive: bool = False

    def describe(self) -> str:
        if self.value is not None:
            shown = self.value
        elif self.inconclusive:
            shown = f"inconclusive, the check cannot run ({self.error})"
        else:
            shown = f"unreadable ({self.error})"
        return f"{self.command} in {self.pod or '(no pod)'}: {shown}"


class StoreAtRisk(BaseModel):
    """The pod(s) a runbook F restart deletes, and what must survive it."""

    model_config = ConfigDict(frozen=True)

    store: str  # "postgres" or "redis"
    namespace: str
    pod: str | None  # by name (redis-master-0) ...
    selector: str | None  # ... or by selector (-l app=postgres)
    command: str  # the data marker's command, as shown (no secret)
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
            command=marker_command("redis").shown(),
            pod_uids=(redis.uid,) if redis is not None else (),
            claims=snapshot.redis_pvcs,
        )
    return StoreAtRisk(
        store="postgres",
        namespace=snapshot.namespace,
        pod=None,
        selector=diagnosis.selector or snapshot.postgres_selector,
        command=marker_command("postgres").shown(),
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
        result = cluster().exec(at.namespace, pod.name, marker_command(at.store))
    except PermanentError as exc:  # e.g. the container is not running: exec is refused
        return DataMarker(pod=pod.name, command=at.command, value=None, error=str(exc))
    if not result.ok:
        error = (result.stderr or result.stdout).strip().splitlines()
        return DataMarker(
            pod=pod.name,
            command=at.command,
            value=None,
            error=error[0] if error else f"exit {result.exit_code}",
            inconclusive=cannot_run(result),
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
    if marker.inconclusive:  # the caller reports it; polling would not change it
        return DataSurvived(marker=marker, claims=tuple(kept))
    if marker.value is None:
        raise NotYetHealthy(f"the store does not answer yet: {marker.describe()}")
    if before.value is not None and marker.value != before.value:
        raise VerifyFailed(
            f"data marker changed across the restart: {before.value} -> {marker.value}"
        )
    return DataSurvived(marker=marker, claims=tuple(kept))
