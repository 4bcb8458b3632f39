"""Health sweep: the runbook's common diagnostic commands, on a schedule.

    kubectl get pods -n alphaswarm -o wide
    kubectl get pods -n alphaswarm-admin -o wide
    kubectl get endpoints -n alphaswarm alphaswarm-client
    kubectl get endpoints -n alphaswarm-admin alphaswarm-cp

It changes nothing. Its markdown artifact is what an operator reads first at 3 a.m.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from tasks.diagnoses.health import HealthReport, HealthSnapshot, diagnose_health
from tasks.probes.common import probe_deployment, probe_endpoints, probe_pods
from tasks.settings import Settings


def _runbook_namespaces(settings: Settings) -> list[str]:
    return [settings.workloads.namespace, settings.workloads.admin_namespace]


class HealthSweepParams(BaseModel):
    """Where to look; defaults are the runbook's names from settings."""

    namespaces: list[str] = Field(
        default_factory=lambda: [
            Settings().workloads.namespace,
            Settings().workloads.admin_namespace,
        ]
    )


def _watched(settings: Settings) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    w = settings.workloads
    deployments = [
        (w.namespace, w.core_deployment),
        (w.namespace, w.worker_deployment),
        (w.namespace, w.client_deployment),
        (w.admin_namespace, w.control_plane_deployment),
    ]
    services = [(w.namespace, w.client_deployment), (w.admin_namespace, w.control_plane_deployment)]
    return deployments, services


def render_report(report: HealthReport) -> str:
    lines = [
        "# Health sweep",
        "",
        f"{report.pods_ready}/{report.pods_seen} pods ready; "
        + ("**healthy**." if report.healthy else f"**{len(report.findings)} finding(s)**."),
    ]
    if report.findings:
        lines += ["", "| severity | target | problem |", "| --- | --- | --- |"]
        lines += [f"| {f.severity} | `{f.target}` | {f.problem} |" for f in report.findings]
    return "\n".join(lines) + "\n"


@flow(name="health-sweep", flow_run_name="health-sweep")
def health_sweep(params: HealthSweepParams | None = None) -> HealthReport:
    """Probe pods, the runbook's Deployments and the ingress-facing Endpoints; report findings."""
    params = params or HealthSweepParams()
    deployments, services = _watched(Settings())
    snapshot = HealthSnapshot(
        pods=tuple(pod for ns in params.namespaces for pod in probe_pods(ns)),
        deployments={f"{ns}/{name}": probe_deployment(ns, name) for ns, name in deployments},
        endpoints={f"{ns}/{svc}": probe_endpoints(ns, svc) for ns, svc in services},
    )
    report = diagnose_health(snapshot)
    create_markdown_artifact(
        render_report(report), key="health-sweep", description="What the sweep saw"
    )
    return report
