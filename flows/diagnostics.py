"""The runbook's common diagnostic commands, as one read-only flow.

    kubectl get pods -n alphaswarm -o wide
    kubectl get pods -n alphaswarm-admin -o wide
    kubectl top pods -n alphaswarm --sort-by=cpu
    kubectl top pods -n alphaswarm --sort-by=memory
    kubectl get events -n alphaswarm --sort-by='.lastTimestamp' | tail -n 30
    kubectl logs -n alphaswarm deploy/alphaswarm-core --tail=200
    kubectl logs -n alphaswarm-admin deploy/alphaswarm-cp --tail=200 | findstr workload_run
    kubectl exec -n alphaswarm deploy/alphaswarm-core -- \
        python -m alphaswarm.cli runs list --limit 20

It changes nothing. The result is a `CommonDiagnostics` snapshot; the run page carries one table
per pod listing and top ordering and a markdown report with the rest, so the first thing an
operator opens during an incident already answers the runbook's first questions.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.adapters.cluster import Pod, PodUsage
from tasks.models.snapshots import CommonDiagnostics
from tasks.probes.common import API_LOG_TAIL, RECENT_EVENTS, probe_common_diagnostics
from tasks.records.artifacts import artifact_key, publish_pods

LOG_LINES_IN_REPORT = 40
MEBIBYTE = 1024 * 1024


def _usage_rows(usage: Sequence[PodUsage]) -> list[dict[str, str | int]]:
    return [
        {
            "name": u.name,
            "cpu": f"{u.cpu_millicores}m",
            "memory": f"{u.memory_bytes // MEBIBYTE}Mi",
        }
        for u in usage
    ]


def _pod_line(pod: Pod) -> str:
    return (
        f"| {pod.name} | {pod.ready} | {pod.status} | {pod.restarts} | {pod.node or ''} | "
        f"{pod.ip or ''} |"
    )


def _fenced(text: str | None, empty: str, last: int = LOG_LINES_IN_REPORT) -> list[str]:
    lines = (text or "").splitlines()[-last:]
    if not lines:
        return [f"_{empty}_"]
    return ["```text", *lines, "```"]


def render_diagnostics(snapshot: CommonDiagnostics) -> str:
    """The snapshot as the markdown an operator reads top to bottom, in the runbook's order."""
    out = [f"# Common diagnostics ({snapshot.observed_at:%Y-%m-%d %H:%M:%S} UTC)", ""]
    if snapshot.problems:
        out += ["**Could not read:**", *[f"- {p}" for p in snapshot.problems], ""]
    for namespace, pods in snapshot.pods.items():
        ready = sum(1 for p in pods if p.is_ready)
        out += [f"## Pods in `{namespace}`: {ready}/{len(pods)} ready", ""]
        out += [
            "| name | ready | status | restarts | node | ip |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        out += [_pod_line(p) for p in pods] + [""]
    for title, usage in (("CPU", snapshot.top_cpu), ("memory", snapshot.top_memory)):
        out += [f"## Top consumers by {title}", ""]
        out += ["| pod | cpu | memory |", "| --- | --- | --- |"]
        out += [f"| {r['name']} | {r['cpu']} | {r['memory']} |" for r in _usage_rows(usage[:10])]
        out += [""]
    out += [f"## Recent events (last {RECENT_EVENTS})", ""]
    out += ["| last seen | type | reason | object | message |", "| --- | --- | --- | --- | --- |"]
    out += [
        f"| {e.last_seen:%H:%M:%S} | {e.type or ''} | {e.reason or ''} | "
        f"{e.involved.kind}/{e.involved.name} | {(e.message or '').replace('|', '/')} |"
        if e.last_seen is not None
        else f"| | {e.type or ''} | {e.reason or ''} | {e.involved.kind}/{e.involved.name} | "
        f"{(e.message or '').replace('|', '/')} |"
        for e in snapshot.recent_events
    ]
    out += ["", f"## API log tail (last {LOG_LINES_IN_REPORT} of {API_LOG_TAIL} lines)", ""]
    out += _fenced(snapshot.api_log_tail, "no log")
    out += ["", "## Control-plane audit log: workload_run", ""]
    out += _fenced("\n".join(snapshot.workload_run_lines), "no workload_run lines")
    out += ["", "## Recent terraform_runs", ""]
    out += _fenced(snapshot.recent_runs, "runs list unavailable")
    return "\n".join(out) + "\n"


@flow(name="common-diagnostics", flow_run_name="common-diagnostics")
def collect_diagnostics() -> CommonDiagnostics:
    """Run the runbook's common diagnostic commands and leave their answers on the run page."""
    snapshot = probe_common_diagnostics()
    for namespace, pods in snapshot.pods.items():
        publish_pods(pods, f"diagnostics-pods-{namespace}", f"kubectl get pods -n {namespace}")
    create_table_artifact(
        _usage_rows(snapshot.top_cpu),
        key=artifact_key("diagnostics-top-cpu"),
        description="kubectl top pods --sort-by=cpu",
    )
    create_table_artifact(
        _usage_rows(snapshot.top_memory),
        key=artifact_key("diagnostics-top-memory"),
        description="kubectl top pods --sort-by=memory",
    )
    create_markdown_artifact(
        render_diagnostics(snapshot),
        key=artifact_key("common-diagnostics"),
        description="The runbook's common diagnostic commands, answered",
    )
    return snapshot
