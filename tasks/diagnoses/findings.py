"""What each of triage's probes saw, in three values: a fault seen, healthy, or inconclusive.

Only a fault seen may pick a branch of the runbook. A probe that could not look (no Postgres pod
because Postgres is managed outside the cluster, no `curl` in the image, no egress from where the
flows run, no ingress controller by the configured name, no broker to ask) is inconclusive: it
is named in the decision and the report, and it never hides what another probe did see.

Each function here is pure: a snapshot in, one Finding out, so every rule is a table row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from tasks.diagnoses.crashes import is_crash_looping, serving
from tasks.diagnoses.workload import is_thrashing
from tasks.models.snapshots import (
    ExecCurl,
    HpaThrashSnapshot,
    IngressSnapshot,
    JwksSnapshot,
    PodCrashSnapshot,
    QueueSnapshot,
    StatefulSnapshot,
)

# curl's exit codes when it could not run at all: 126 not executable, 127 not found.
CURL_NOT_RUNNABLE = frozenset({126, 127})
CURL_DNS_FAILURE = 6
CURL_HTTP_ERROR = 22
JWKS_SYMPTOM = "jwks_unreachable"


class FindingKind(StrEnum):
    FAULT = "fault"
    HEALTHY = "healthy"
    INCONCLUSIVE = "inconclusive"


class Finding(BaseModel):
    """What one probe saw. Only `fault` can pick a runbook branch."""

    model_config = ConfigDict(frozen=True)

    probe: str  # what was looked at, as an operator names it: "postgres", "JWKS", ...
    kind: FindingKind
    summary: str
    evidence: tuple[str, ...] = ()

    @property
    def fault(self) -> bool:
        return self.kind is FindingKind.FAULT

    @property
    def inconclusive(self) -> bool:
        return self.kind is FindingKind.INCONCLUSIVE

    def line(self) -> str:
        return f"{self.probe}: {self.kind.value}: {self.summary}"


def _finding(probe: str, kind: FindingKind, summary: str, *evidence: str) -> Finding:
    return Finding(probe=probe, kind=kind, summary=summary, evidence=tuple(evidence))


def fault(probe: str, summary: str, *evidence: str) -> Finding:
    return _finding(probe, FindingKind.FAULT, summary, *evidence)


def healthy(probe: str, summary: str, *evidence: str) -> Finding:
    return _finding(probe, FindingKind.HEALTHY, summary, *evidence)


def inconclusive(probe: str, why: str, *evidence: str) -> Finding:
    return _finding(probe, FindingKind.INCONCLUSIVE, why, *evidence)


# -- F: storage ----------------------------------------------------------------------------------


def postgres_finding(snapshot: StatefulSnapshot) -> Finding:
    pods = snapshot.postgres_pods
    if not pods:
        return inconclusive(
            "postgres",
            f"no pod matches {snapshot.postgres_selector} in {snapshot.namespace}: Postgres is "
            "managed outside the cluster (as the runbook requires in production) or runs under "
            "other labels; nothing here tells whether it is up",
        )
    ready = [p.name for p in pods if serving(p, snapshot.observed_at)]
    shown = ", ".join(f"{p.name} {p.status} {p.ready}" for p in pods)
    if ready:
        return healthy("postgres", f"ready: {', '.join(ready)}", shown)
    return fault("postgres", f"no Postgres pod is ready ({shown})", shown)


def redis_finding(snapshot: StatefulSnapshot) -> Finding:
    pod, sts = snapshot.redis_pod, snapshot.redis_statefulset
    name = snapshot.redis_pod_name
    if pod is None and sts is None:
        return inconclusive(
            "redis",
            f"neither pod {name} nor its StatefulSet exists in {snapshot.namespace}: Redis runs "
            "elsewhere or under another name",
        )
    if pod is None:
        assert sts is not None
        return fault(
            "redis", f"pod {name} is missing; statefulset {sts.name} has {sts.ready_replicas} ready"
        )
    if serving(pod, snapshot.observed_at):
        return healthy("redis", f"{name} is ready")
    return fault("redis", f"{name} is {pod.status} {pod.ready}")


# -- D: JWKS ---------------------------------------------------------------------------------------


def curl_could_not_run(curl: ExecCurl | None) -> bool:
    return curl is None or curl.exit_code is None or curl.exit_code in CURL_NOT_RUNNABLE


def jwks_finding(snapshot: JwksSnapshot) -> Finding:
    """A fault when the pod's curl reached Auth0 and failed, when Auth0 answered an HTTP error
    here (unless the pod fetched the keys and the app logs no symptom: the app's own view wins
    over one error answered to this process), or when the app logs the runbook's symptom
    (`jwks_unreachable`). A curl that could not run, or a connection from here that could not be
    made (the flows may run without egress), tells nothing."""
    here, pod = snapshot.from_here, snapshot.from_pod
    faults: list[str] = []
    fine: list[str] = []
    unknown: list[str] = []
    if curl_could_not_run(pod):
        why = snapshot.pod_error or (
            f"curl exit {pod.exit_code}: {pod.stderr}" if pod is not None else "not run"
        )
        unknown.append(f"JWKS from a {snapshot.deployment_name} pod: curl could not run ({why})")
    elif pod is not None and pod.ok:
        fine.append(f"JWKS from pod {pod.pod}: ok")
    elif pod is not None:
        faults.append(f"JWKS from pod {pod.pod}: curl exit {pod.exit_code}: {pod.stderr}")
    if here is not None:
        if here.ok:
            fine.append("JWKS from this process: ok")
        elif here.failure == "http":
            line = f"JWKS from this process: HTTP {here.status} {here.detail}".strip()
            if pod is not None and pod.ok and not snapshot.symptom_lines:
                # D flips a hard rule: one error answered here while the app reaches Auth0 and
                # logs nothing is not an outage of Auth0 (nor its positive evidence).
                unknown.append(f"{line}, while the pod fetched the keys: not the app's outage")
            else:
                faults.append(line)
        else:
            unknown.append(
                f"JWKS from this process: {here.failure} {here.detail} (the flows may run "
                "without egress: this says nothing about Auth0)"
            )
    if snapshot.symptom_lines:
        faults.append(
            f"{snapshot.deployment_name} logs {JWKS_SYMPTOM}: {snapshot.symptom_lines[-1]}"
        )
    elif snapshot.log_read:
        fine.append(f"{snapshot.deployment_name}'s recent log has no {JWKS_SYMPTOM}")
    evidence = (*faults, *fine, *unknown)
    if faults:
        return fault("JWKS", faults[0], *evidence)
    if fine:
        return healthy("JWKS", "; ".join(fine), *evidence)
    return inconclusive("JWKS", "; ".join(unknown) or "JWKS was not probed", *evidence)


# -- E: ingress ------------------------------------------------------------------------------------


def ingress_finding(snapshot: IngressSnapshot) -> Finding:
    """A fault when the controller exists with no ready pod, or a backend Service exists with
    no ready endpoint. A controller or a Service that is not there by the configured name is
    inconclusive: the ingress may be served otherwise."""
    unknown: list[str] = []
    if snapshot.controller is None:
        unknown.append(
            f"no Deployment {snapshot.controller_namespace}/{snapshot.controller_name}: the "
            "ingress controller runs under another name or outside the cluster"
        )
    else:
        ready = [p for p in snapshot.controller_pods if serving(p, snapshot.observed_at)]
        if not ready:
            return fault(
                "ingress",
                f"no {snapshot.controller_name} pod is ready (0/{len(snapshot.controller_pods)})",
            )
    empty: list[str] = []
    explained: list[str] = []
    for svc in snapshot.services:
        if not svc.exists:
            unknown.append(f"no Service {svc.namespace}/{svc.service}")
        elif svc.endpoints is None:
            unknown.append(f"Service {svc.namespace}/{svc.service} has no Endpoints object")
        elif svc.endpoints.ready:
            continue
        elif svc.crashing:
            explained.append(
                f"{svc.namespace}/{svc.service} has no ready endpoints because its pods "
                f"crash-loop ({', '.join(svc.crashing)}): a workload fault, not the ingress"
            )
        else:
            empty.append(f"{svc.namespace}/{svc.service}")
    if empty:
        return fault("ingress", f"no ready endpoints behind {', '.join(empty)}", *unknown)
    if unknown and snapshot.controller is None:
        return inconclusive("ingress", "; ".join(unknown), *explained)
    return healthy(
        "ingress",
        "the controller is up; no backend is empty for a reason of its own",
        *explained,
        *unknown,
    )


# -- A, B: pods and the HPA ------------------------------------------------------------------------


def crashing_pods(snapshot: PodCrashSnapshot) -> list[str]:
    """The workload's crash-looping pods, judged over the window at the probe's instant."""
    return [p.name for p in snapshot.pods if is_crash_looping(p, snapshot.observed_at)]


def crash_finding(crashes: Sequence[PodCrashSnapshot]) -> Finding:
    looping = {f"{s.namespace}/{s.deployment_name}": crashing_pods(s) for s in crashes}
    looping = {k: v for k, v in looping.items() if v}
    if not looping:
        return healthy("pods", "no pod in the watched namespaces is crash-looping")
    lines = [f"{k}: crash-looping {', '.join(v)}" for k, v in looping.items()]
    return fault("pods", "; ".join(lines), *lines)


def hpa_finding(snapshot: HpaThrashSnapshot | None, now: datetime) -> Finding:
    if snapshot is None:
        return inconclusive("HPA", "not probed")
    hpa = snapshot.hpa
    if hpa is None:
        return inconclusive("HPA", f"no HPA {snapshot.namespace}/{snapshot.hpa_name}")
    if is_thrashing(hpa.rescales, now):
        total = sum(r.count for r in hpa.rescales)
        return fault("HPA", f"{hpa.name} is thrashing ({total} rescales in the lookback)")
    return healthy("HPA", f"{hpa.name} is not thrashing")


# -- C: the queue ----------------------------------------------------------------------------------


def queue_finding(snapshot: QueueSnapshot | None, not_probed: str = "") -> Finding:
    if snapshot is None:
        return inconclusive("queue", not_probed or "the queue was not probed")
    if snapshot.depth is None:
        return inconclusive(
            "queue",
            f"the depth of {snapshot.queue} could not be read "
            f"({snapshot.broker_error or 'no answer'})",
        )
    where = f"queue {snapshot.queue} holds {snapshot.depth} (alarm at {snapshot.alarm})"
    if snapshot.depth >= snapshot.alarm:
        return fault("queue", where)
    return healthy("queue", where)
