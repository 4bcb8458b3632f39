"""Terminal rendering of flow results."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from flows.triage import TriageOutcome
from tasks.health import HealthReport, Severity


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
    for line in result.decision.evidence:
        console.print(f"  • {line}")
    if result.plan:
        table = Table("plan" if result.dry_run else "changes")
        for step in result.plan:
            table.add_row(step)
        console.print(table)
    outcome = result.outcome
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
