"""Terminal rendering of flow results."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

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
