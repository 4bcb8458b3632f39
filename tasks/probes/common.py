"""Read-only probes: what the runbook's "common diagnostic commands" look at."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.adapters.cluster import Deployment, Endpoints, Pod, PodUsage
from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import runs_list
from tasks.connection import cluster
from tasks.diagnoses.health import NamespaceListing
from tasks.models.snapshots import CommonDiagnostics
from tasks.retries import probe_task
from tasks.settings import Settings


@probe_task("probe-pods")
def probe_pods(namespace: str, selector: str | None = None) -> tuple[Pod, ...]:
    """`kubectl get pods -n NAMESPACE -o wide [-l SELECTOR]`."""
    return cluster().pods(namespace, selector)


@probe_task("probe-deployment")
def probe_deployment(namespace: str, name: str) -> Deployment | None:
    """`kubectl get deployment NAME`: None when it does not exist."""
    return cluster().deployment(namespace, name)


@probe_task("probe-endpoints")
def probe_endpoints(namespace: str, service: str) -> Endpoints | None:
    """`kubectl get endpoints -n NAMESPACE SERVICE`."""
    return cluster().endpoints(namespace, service)


@probe_task("probe-namespace-lists")
def probe_namespace_lists(namespace: str) -> NamespaceListing:
    """`kubectl get pods,deployments,endpoints -n NAMESPACE`: each LISTed in pages of 500 as
    kubectl does (ceil(n / 500) calls per kind), the pods as rows. A page that cannot be read
    fails the probe (transient errors retry it from the first page): a sweep never reports on
    part of a list."""
    c = cluster()
    return NamespaceListing(
        namespace=namespace,
        pods=c.pod_rows(namespace),
        deployments=c.deployments(namespace),
        endpoints=c.all_endpoints(namespace),
    )


@probe_task("probe-top-pods")
def probe_top_pods(namespace: str) -> tuple[PodUsage, ...]:
    """`kubectl top pods -n NAMESPACE --sort-by=cpu`."""
    return cluster().top_pods(namespace, sort_by="cpu")


WORKLOAD_RUN = "workload_run"
RECENT_EVENTS = 30
API_LOG_TAIL = 200
RUNS_LIST = runs_list(20)


@probe_task("probe-common-diagnostics")
def probe_common_diagnostics() -> CommonDiagnostics:
    """The runbook's common diagnostic commands, in its order. A part that cannot be read is
    named in `problems` rather than failing the whole snapshot: at 3 a.m. half a picture beats
    none. Transient errors still retry the whole probe."""
    w = Settings().workloads
    c = cluster()
    problems: list[str] = []
    pods = {ns: c.pods(ns) for ns in (w.namespace, w.admin_namespace)}
    events = sorted(
        c.events(w.namespace),
        key=lambda e: e.last_seen or datetime.min.replace(tzinfo=UTC),
    )[-RECENT_EVENTS:]
    api = c.deployment_logs(w.namespace, w.core_deployment, tail=API_LOG_TAIL)
    cp = c.deployment_logs(w.admin_namespace, w.control_plane_deployment, tail=API_LOG_TAIL)
    if api is None:
        problems.append(f"no pod of {w.core_deployment} to read logs from")
    if cp is None:
        problems.append(f"no pod of {w.control_plane_deployment} to read logs from")
    try:
        runs = c.exec_in_deployment(w.namespace, w.core_deployment, RUNS_LIST)
        recent_runs = runs.stdout if runs.ok else None
        if not runs.ok:
            problems.append(f"runs list failed: {runs.stderr.strip()}")
    except PermanentError as exc:
        recent_runs = None
        problems.append(f"runs list: {exc}")
    return CommonDiagnostics(
        observed_at=datetime.now(UTC),
        pods=pods,
        top_cpu=c.top_pods(w.namespace, sort_by="cpu"),
        top_memory=c.top_pods(w.namespace, sort_by="memory"),
        recent_events=tuple(events),
        api_log_tail=api.text if api is not None else None,
        workload_run_lines=tuple(
            line for line in ((cp.text or "") if cp else "").splitlines() if WORKLOAD_RUN in line
        ),
        recent_runs=recent_runs,
        problems=tuple(problems),
    )
