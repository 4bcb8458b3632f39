"""Runbook E — Ingress returns 503.

    # Check NGINX Ingress controller
    kubectl -n ingress-nginx get pods
    kubectl -n ingress-nginx logs deploy/ingress-nginx-controller --tail=200
    # Check service endpoints
    kubectl get endpoints -n alphaswarm alphaswarm-client
    kubectl get endpoints -n alphaswarm-admin alphaswarm-cp
    # If endpoints are empty, the pods aren't passing readinessProbe.

The runbook stops at the cause; the fix it allows is the one runbook A already uses: a rolling
restart, of the controller when no controller pod is ready, else of the Deployment behind the
Service whose readiness probes fail (the Unhealthy events say why). Readiness that fails on a
datastore is runbook F, not a restart of the backend; empty Endpoints with no Unhealthy event to
explain them escalate. Then prove it: the rollout completes and every backend has ready
endpoints again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.approvals import approved_over_limits
from flows.runs import configured, named, tell_change, tell_diagnosis, tell_outcome
from tasks.changes.mutations import restart_deployment
from tasks.diagnoses.platform import diagnose_ingress
from tasks.endings import no_action, settle
from tasks.models.diagnosis import Diagnosis
from tasks.models.outcome import Outcome, Verification
from tasks.models.scenario_call import ScenarioCall
from tasks.models.snapshots import IngressSnapshot
from tasks.probes.platform import probe_ingress
from tasks.records.artifacts import publish_diagnosis, publish_evidence, publish_pods
from tasks.settings import Settings
from tasks.verifies import (
    verify_endpoints_ready,
    verify_pods_not_crashing,
    verify_rollout_complete,
)

VERIFY_CHECK = "rollout complete, every backend has ready endpoints"


class Backend(BaseModel):
    """A Service behind the Ingress; the Deployments behind it are found through its selector
    and the pods' owners, whatever they are named."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    service: str


def _runbook_backends() -> list[Backend]:
    w = Settings().workloads
    return [
        Backend(namespace=w.namespace, service=w.client_deployment),
        Backend(namespace=w.admin_namespace, service=w.control_plane_deployment),
    ]


class Ingress503Params(BaseModel):
    """The controller and the backends to check, and whether to act; defaults from settings."""

    controller_namespace: str = Field(
        default_factory=lambda: Settings().workloads.ingress_namespace
    )
    controller: str = Field(default_factory=lambda: Settings().workloads.ingress_controller)
    backends: list[Backend] = Field(default_factory=_runbook_backends, min_length=1)
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    verify_attempts: int = Field(default=120, ge=1, description="polls of each verify")
    verify_delay_seconds: float = Field(default=0.5, ge=0, description="pause between polls")

    @classmethod
    def from_call(cls, call: ScenarioCall) -> Ingress503Params:
        """E probes the controller and the backends itself: what it restarts comes from its
        own readiness evidence, not from triage's target."""
        return cls(dry_run=call.dry_run, **call.verify.overrides())


def _ingress_evidence(snapshot: IngressSnapshot) -> list[str]:
    """The runbook's commands and what they answered."""
    ns, name = snapshot.controller_namespace, snapshot.controller_name
    lines = [f"$ kubectl -n {ns} get pods"]
    lines += [
        f"{p.name} {p.ready} {p.status} restarts={p.restarts}" for p in snapshot.controller_pods
    ] or ["(no controller pods)"]
    lines.append(f"$ kubectl -n {ns} logs deploy/{name} --tail=200   (last 20 lines)")
    lines += snapshot.controller_log_tail.splitlines()[-20:] or ["(no log)"]
    for svc in snapshot.services:
        lines.append(f"$ kubectl get endpoints -n {svc.namespace} {svc.service}")
        if svc.endpoints is None:
            lines.append("(no Endpoints object)")
            continue
        ready = ", ".join(a.ip for a in svc.endpoints.ready) or "<none>"
        lines.append(f"ready: {ready}; not ready: {len(svc.endpoints.not_ready)}")
        lines += [f"Unhealthy {f.pod} (x{f.count}): {f.message}" for f in svc.readiness_failures]
    return lines


def _verify(diagnosis: Diagnosis, params: Ingress503Params, since: datetime) -> Verification:
    attempts, delay = params.verify_attempts, params.verify_delay_seconds
    details = []
    for ns, deployment in diagnosis.targets:
        rollout = verify_rollout_complete.with_options(retries=attempts, retry_delay_seconds=delay)(
            ns, deployment
        )
        details.append(rollout.message)
        if (ns, deployment) == (params.controller_namespace, params.controller):
            ready = verify_pods_not_crashing.with_options(
                retries=attempts, retry_delay_seconds=delay
            )(ns, deployment, [], since)
            details.append(f"{ready} controller pod(s) ready, none crashed since the restart")
    for backend in params.backends:
        count = verify_endpoints_ready.with_options(retries=attempts, retry_delay_seconds=delay)(
            backend.namespace, backend.service
        )
        details.append(f"{backend.namespace}/{backend.service}: {count} ready endpoint(s)")
    return Verification(check=VERIFY_CHECK, passed=True, detail="; ".join(details))


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target: the ingress controller in front of the backends."""
    w = Settings().workloads
    ns = p.get("controller_namespace") or w.ingress_namespace
    return f"{ns}/{p.get('controller') or w.ingress_controller}"


@flow(name="ingress-503", flow_run_name=named("ingress-503", _subject))
def remediate_ingress_503(
    controller_namespace: str = "",
    controller: str = "",
    backends: tuple[Backend, ...] = (),
    dry_run: bool = True,
    verify_attempts: int = 120,
    verify_delay_seconds: float = 0.5,
) -> Outcome:
    """Runbook E: check the controller and the backends' Endpoints, find the failing readiness
    probes, rolling-restart what is wedged (every wedged backend), verify the endpoints are
    ready.

    Args:
        controller_namespace: where the NGINX Ingress controller runs; empty: the configured
            ingress namespace (ingress-nginx)
        controller: the controller's Deployment; empty: the configured one
            (ingress-nginx-controller)
        backends: the Services behind the Ingress whose Endpoints must be ready; empty: the
            runbook's two (alphaswarm/alphaswarm-client and alphaswarm-admin/alphaswarm-cp)
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        verify_attempts: polls of each verification before it counts as failed
        verify_delay_seconds: pause between polls
    """
    params = Ingress503Params(
        **configured(
            controller_namespace=controller_namespace,
            controller=controller,
            backends=backends,
        ),
        dry_run=dry_run,
        verify_attempts=verify_attempts,
        verify_delay_seconds=verify_delay_seconds,
    )
    return tell_outcome(_remediate(params))


def _remediate(params: Ingress503Params) -> Outcome:
    snapshot = probe_ingress(
        params.controller_namespace,
        params.controller,
        [(b.namespace, b.service) for b in params.backends],
    )
    publish_pods(
        snapshot.controller_pods,
        "ingress-503-controller-pods",
        f"kubectl -n {params.controller_namespace} get pods",
    )
    publish_evidence(
        "Ingress controller, its log and the backends' Endpoints",
        _ingress_evidence(snapshot),
        "ingress-503-evidence",
    )
    diagnosis = diagnose_ingress(snapshot)
    publish_diagnosis(diagnosis, "ingress-503-diagnosis")
    tell_diagnosis(diagnosis)
    if not diagnosis.needs_action:
        return no_action(diagnosis, "ingress-503")
    changes = tuple(
        approved_over_limits(
            restart_deployment,
            ns,
            name,
            dry_run=params.dry_run,
            reason=diagnosis.summary,
            evidence=diagnosis.evidence,
        )
        for ns, name in diagnosis.targets
    )
    for change in changes:
        tell_change(change)
    return settle(
        diagnosis,
        changes,
        dry_run=params.dry_run,
        flow="ingress-503",
        check=VERIFY_CHECK,
        verify=lambda: (_verify(diagnosis, params, changes[0].since),),
        did_not_fix="the restart did not bring the endpoints back",
    )
