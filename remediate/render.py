"""Terminal rendering of flow results."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.triage import TriageOutcome
from store.models import FollowUpStatus, Incident, IncidentStatus
from store.queries import IncidentRecord
from store.stats import EffectivenessReport, ScenarioFigures
from tasks.diagnoses.health import HealthReport, Severity
from tasks.records.report import timeline


def print_health_report(console: Console, report: HealthReport) -> None:
    console.print(f"{report.pods_ready}/{report.pods_seen} pods ready")
    if report.healthy:
        console.print("[green]healthy: nothing to do[/green]")
        return
    table = Table("severity", "target", "problem")
    for finding in report.findings:
        colour = "red" if finding.severity is Severity.CRITICAL else "yellow"
        table.add_row(f"[{colour}]{finding.severity}[/{colour}]", finding.target, finding.problem)
    console.print(table)


def print_triage_outcome(console: Console, result: TriageOutcome) -> None:
    """Decision, plan and outcome, in the order an operator asks for them."""
    branch = (
        f"{result.scenario.value} — {result.scenario.runbook_title}" if result.scenario else "none"
    )
    mode = "dry run" if result.dry_run else "applied"
    colour = "red" if result.escalate else "green"
    console.print(f"[bold]Triage:[/bold] scenario {branch} ({mode})")
    console.print(f"[{colour}]{result.reason}[/{colour}]")
    for line in result.decision.evidence if result.decision is not None else ():
        console.print(f"  • {line}")
    for line in result.decision.inconclusive if result.decision is not None else ():
        console.print(f"  [yellow]? could not tell:[/yellow] {line}")
    for line in result.ignored:
        console.print(f"  [dim]ignored: {line}[/dim]")
    if result.plan:
        table = Table("plan" if result.dry_run else "changes")
        for step in result.plan:
            table.add_row(step)
        console.print(table)
    outcome = result.outcome
    _print_incident_line(console, result)
    if outcome is None:
        console.print("no scenario flow ran" + (": escalated" if result.escalate else ""))
        return
    console.print(f"[bold]Outcome:[/bold] {outcome.status} — {outcome.message}")
    for check in outcome.verification:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        console.print(f"  {mark} {check.check}: {check.detail}")
    if outcome.bypass is not None:
        console.print(
            f"[yellow]hard rule bypassed:[/yellow] {outcome.bypass.rule} "
            f"(approved by {outcome.bypass.approved_by})"
        )
    for follow_up in outcome.follow_ups:
        when = (
            f"scheduled run {follow_up.scheduled_flow_run_id}"
            if follow_up.scheduled_flow_run_id
            else "NOT scheduled"
        )
        console.print(f"[yellow]{follow_up.priority}[/yellow] {follow_up.title} ({when})")


def _print_incident_line(console: Console, result: TriageOutcome) -> None:
    if result.incident_id is None:
        return
    console.print(
        f"[bold]Incident {result.incident_id}[/bold]: {result.incident_status}"
        + (f"; report {result.report}" if result.report else "")
        + f" (remediate incidents show {result.incident_id})"
    )


STATUS_COLOURS = {
    IncidentStatus.RESOLVED: "green",
    IncidentStatus.VERIFIED: "green",
    IncidentStatus.ESCALATED: "red",
    IncidentStatus.MITIGATING: "yellow",
}


def _status(status: IncidentStatus) -> str:
    colour = STATUS_COLOURS.get(IncidentStatus(status), "white")
    return f"[{colour}]{status}[/{colour}]"


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at is not None else ""


def print_incidents(console: Console, rows: list[Incident]) -> None:
    if not rows:
        console.print("no incidents match")
        return
    table = Table("id", "opened (UTC)", "status", "scenario")
    table.add_column("target", no_wrap=True)  # what an operator searches for: never cut
    table.add_column("title", overflow="fold")
    table.add_column("resolved (UTC)")
    for r in rows:
        table.add_row(
            str(r.id),
            _when(r.opened_at),
            _status(r.status),
            r.scenario or "-",
            escape(r.target_key),
            escape(r.title),
            _when(r.resolved_at),
        )
    console.print(table)


def print_incident(console: Console, record: IncidentRecord) -> None:
    """The incident, its timeline, its changes and what it still owes."""
    i = record.incident
    console.print(f"[bold]Incident {record.id}[/bold]: {escape(i.title)}")
    console.print(
        f"status {_status(i.status)}, scenario {i.scenario or '-'}, target {escape(i.target_key)}, "
        f"{i.environment}, opened {_when(i.opened_at)} UTC"
        + (f", resolved {_when(i.resolved_at)} UTC" if i.resolved_at else "")
    )
    if i.root_cause:
        console.print(f"root cause: {escape(i.root_cause)}")
    table = Table("time (UTC)", "what happened", "flow run", title="timeline")
    for line in timeline(record):
        table.add_row(_when(line.at), escape(line.what), (line.flow_run_id or "")[:8])
    console.print(table)
    if record.actions:
        changes = Table("change", "status", "dry run", "before", "after", title="changes")
        for a in record.actions:
            changes.add_row(
                escape(a.summary),
                str(a.status),
                "yes" if a.dry_run else "no",
                escape(str(a.before)),
                escape(str(a.after)),
            )
        console.print(changes)
        for a in record.actions:
            if a.revert is not None and a.status == "applied" and not a.dry_run:
                console.print(f"to put back: remediate revert {a.id}  ({escape(a.summary)})")
    for f in record.follow_ups:
        mark = "x" if FollowUpStatus(f.status).is_closed else " "
        console.print(f"[{mark}] {f.priority} {escape(f.title)} ({f.status})")
    if i.report_path:
        console.print(f"report: {i.report_path}")


def _seconds(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def print_effectiveness(console: Console, report: EffectivenessReport) -> None:
    table = Table(
        "scenario",
        "incidents",
        "mitigated automatically",
        "escalated",
        "open",
        "time to mitigate median (s)",
        "p95 (s)",
        "repeats within 24 h",
    )
    rows: list[ScenarioFigures] = [*report.by_scenario, report.overall]
    for f in rows:
        table.add_row(
            f.scenario,
            str(f.incidents),
            str(f.mitigated_automatically),
            str(f.escalated),
            str(f.open),
            _seconds(f.time_to_mitigate_median_seconds),
            _seconds(f.time_to_mitigate_p95_seconds),
            str(f.repeats_within_24h),
        )
    console.print(table)
