"""Health sweep: the runbook's common diagnostic commands, on a schedule, for every watched
namespace at once:

    kubectl get pods,deployments,endpoints -n alphaswarm
    kubectl get pods,deployments,endpoints -n alphaswarm-admin
    kubectl get pods,deployments,endpoints -n ingress-nginx

Each LIST is read in pages of 500, as kubectl reads it (`limit` and `continue`): three calls
per namespace up to 500 pods, Deployments and Services each, ceil(n / 500) per kind beyond, each
page decoded straight into the facts the diagnosis reads (pods as `PodRow`s), so one page of raw
JSON is held at a time. A page that cannot be read fails the probe (its retry lists again): the
sweep never reports on part of a list. It changes nothing in the cluster.

What it finds about a workload (crash-looping pods of a Deployment, a Deployment without
available replicas, a Service without ready endpoints) it hands to the intake as Alertmanager
alerts (`open_incidents`), which opens or joins incidents and starts triage for each new one; a
handoff that fails is reported, never the sweep's failure. Its markdown artifact is what an
operator reads first at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.runs import named, tell
from tasks.diagnoses.health import (
    SOURCE,
    Handoff,
    HealthReport,
    HealthSnapshot,
    alert_batch,
    diagnose_health,
)
from tasks.models.alerts import Alert
from tasks.probes.common import probe_namespace_lists
from tasks.settings import Settings, Workloads
from tasks.triggers.intake import receive
from tasks.triggers.outbox import deliver_pending


def swept_namespaces(namespaces: list[str] | None, w: Workloads) -> list[str]:
    """The namespaces asked for, else the configured scope with the runbook's two first."""
    if namespaces:
        return list(dict.fromkeys(namespaces))
    return list(dict.fromkeys((w.namespace, w.admin_namespace, *w.scope)))


def runbook_objects(w: Workloads) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The runbook's Deployments (missing is a finding) and its ingress-facing Services."""
    deployments = [
        (w.namespace, w.core_deployment),
        (w.namespace, w.worker_deployment),
        (w.namespace, w.client_deployment),
        (w.admin_namespace, w.control_plane_deployment),
    ]
    services = [(w.namespace, w.client_deployment), (w.admin_namespace, w.control_plane_deployment)]
    return deployments, services


def _delivered(handoff: Handoff) -> Handoff:
    """Create the triage runs the outbox holds (the ones just owed, and any left by a Prefect
    that was down); what could not be created waits there for the next attempt."""
    try:
        delivery = deliver_pending()
    except Exception as exc:  # deliver_pending should not raise; the sweep must not either
        return handoff.model_copy(update={"error": f"triage runs not delivered: {exc!r}"})
    return handoff.model_copy(
        update={
            "runs_created": len(delivery.started),
            "runs_waiting": delivery.failed,
            "error": f"triage runs waiting: {delivery.error}" if delivery.error else None,
        }
    )


@task(name="open-incidents", cache_policy=NO_CACHE)
def open_incidents_for(alerts: tuple[Alert, ...]) -> Handoff:
    """Hand the sweep's alerts to the intake as one Alertmanager batch (it stores them, opens
    or joins incidents and owes each new one a triage run), then deliver those runs. Never
    raises: what went wrong is the Handoff's `error`."""
    try:
        receipt = receive(alert_batch(alerts), source=SOURCE)
    except Exception as exc:  # the sweep's report matters more than the handoff
        get_run_logger().warning("%d alert(s) not handed to the intake: %r", len(alerts), exc)
        return Handoff(error=f"not handed to the intake: {exc!r}")
    handoff = _delivered(
        Handoff(
            accepted=receipt.accepted,
            duplicates=receipt.duplicates,
            ignored=receipt.ignored,
            incidents_opened=receipt.incidents_opened,
            incidents_joined=receipt.incidents_joined,
            runs_owed=receipt.runs_owed,
        )
    )
    tell(
        "intake: incidents opened %s, joined %s; triage runs created %s, waiting %s",
        list(handoff.incidents_opened),
        list(handoff.incidents_joined),
        handoff.runs_created,
        handoff.runs_waiting,
    )
    if handoff.error:
        get_run_logger().warning("%s", handoff.error)
    return handoff


def _handoff_lines(report: HealthReport) -> list[str]:
    """The alerts the findings raised, and what the intake made of them."""
    if not report.alerts:
        return []
    lines = ["", "## Incidents", "", "| alert | severity | summary | since |"]
    lines.append("| --- | --- | --- | --- |")
    lines += [
        f"| {a.name} | {a.labels.get('severity', '')} | {a.annotations.get('summary', '')} | "
        f"{a.starts_at:%Y-%m-%d %H:%M:%S %Z} |"
        for a in report.alerts
    ]
    handoff = report.handoff
    if handoff is None:
        return [*lines, "", "Not handed to the intake: `open_incidents` is off."]
    if handoff.error and not (handoff.accepted or handoff.duplicates):
        return [*lines, "", f"**Not handed to the intake**: {handoff.error}"]
    opened = ", ".join(f"#{i}" for i in handoff.incidents_opened) or "none"
    joined = ", ".join(f"#{i}" for i in handoff.incidents_joined) or "none"
    lines += [
        "",
        f"Intake: {handoff.accepted} alert(s) accepted, {handoff.duplicates} duplicate(s); "
        f"incidents opened: {opened}; joined: {joined}; triage runs created: "
        f"{handoff.runs_created if handoff.runs_created is not None else 'none'}, "
        f"waiting in the outbox: {handoff.runs_waiting}.",
    ]
    lines += [f"- ignored: {why}" for why in handoff.ignored]
    return lines + ([f"- **{handoff.error}**"] if handoff.error else [])


def render_report(report: HealthReport) -> str:
    lines = [
        "# Health sweep",
        "",
        f"{report.pods_ready}/{report.pods_seen} pods ready"
        + (f" in {', '.join(report.namespaces)}" if report.namespaces else "")
        + "; "
        + ("**healthy**." if report.healthy else f"**{len(report.findings)} finding(s)**."),
    ]
    if report.findings:
        lines += ["", "| severity | target | problem |", "| --- | --- | --- |"]
        lines += [f"| {f.severity} | `{f.target}` | {f.problem} |" for f in report.findings]
    lines += _handoff_lines(report)
    return "\n".join(lines) + "\n"


def _subject(p: Mapping[str, Any]) -> str:
    """What the run sweeps, and whether it only reports."""
    where = ", ".join(p.get("namespaces") or ()) or "the configured namespaces"
    return where + ("" if p.get("open_incidents", True) else " (report only)")


@flow(name="health-sweep", flow_run_name=named("health-sweep", _subject))
def health_sweep(namespaces: list[str] | None = None, open_incidents: bool = True) -> HealthReport:
    """List pods, Deployments and Endpoints in each namespace (in pages of 500), report what
    is wrong, and open incidents for the broken workloads.

    Args:
        namespaces: the namespaces to sweep; empty: the configured scope (the runbook's two,
            the ingress controller's and REMEDIATE_WORKLOADS__EXTRA_NAMESPACES)
        open_incidents: hand what the sweep finds to the intake as alerts, which opens or
            joins an incident per workload and starts triage (a dry run unless the intake is
            set to apply) for each new one; untick to only report
    """
    settings = Settings()
    w = settings.workloads
    deployments, services = runbook_objects(w)
    listings = [probe_namespace_lists(ns) for ns in swept_namespaces(namespaces, w)]
    snapshot = HealthSnapshot.from_listings(
        listings, expected_deployments=deployments, ingress_facing=services
    )
    report = diagnose_health(snapshot)
    if open_incidents and report.alerts:
        report = report.model_copy(update={"handoff": open_incidents_for(report.alerts)})
    create_markdown_artifact(
        render_report(report),
        key="health-sweep",
        description="What the sweep saw",
    )
    return report
