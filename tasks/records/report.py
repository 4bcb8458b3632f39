"""The post-incident report, as the runbook asks for it:

    Open an incident report in alphaswarm_docs/incidents/<yyyy-mm-dd>-<slug>.md.
    Capture: timeline, blast radius, root cause, fixes applied, follow-ups.

`render_report` is pure: an `IncidentRecord` from the store in, markdown out, each step linked
to the Prefect flow run that took it (`ui_url`: the Prefect UI, when one is known). The same
record always renders the same text, so `remediate incidents report ID` can re-render it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from store.models import ActionStatus, FollowUpStatus, IncidentStatus
from store.queries import IncidentRecord
from tasks.models.diagnosis import Scenario

FLOW_NAMES = {
    Scenario.POD_CRASH: "pod-crash",
    Scenario.HPA_THRASH: "hpa-thrash",
    Scenario.QUEUE_BACKLOG: "queue-backlog",
    Scenario.JWKS_OUTAGE: "jwks-outage",
    Scenario.INGRESS_503: "ingress-503",
    Scenario.STATEFUL_FAILOVER: "stateful-failover",
}

Link = Callable[[str | None], str]


def flow_run_linker(ui_url: str | None) -> Link:
    """`[run 1a2b3c4d](UI/runs/flow-run/ID)`, or the id in backticks when no UI is known."""

    def link(flow_run_id: str | None) -> str:
        if not flow_run_id:
            return "—"
        short = flow_run_id[:8]
        if ui_url:
            return f"[run {short}]({ui_url.rstrip('/')}/runs/flow-run/{flow_run_id})"
        return f"`{flow_run_id}`"

    return link


def slug(record: IncidentRecord) -> str:
    """`pod-crash-alphaswarm-core`: the scenario's flow and the target, safe for a file name."""
    incident = record.incident
    scenario = Scenario(incident.scenario) if incident.scenario else None
    what = FLOW_NAMES[scenario] if scenario else "incident"
    target = incident.target or incident.target_key.split("/")[-1]
    text = f"{what}-{target}".lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text)).strip("-")[:80] or "incident"


def report_path(record: IncidentRecord, folder: Path, taken: Callable[[Path], bool]) -> Path:
    """`<folder>/<yyyy-mm-dd>-<slug>.md`, by the day it opened; the incident's own path if it
    has one; `-<id>` appended when another incident of that day already took the name."""
    incident = record.incident
    if incident.report_path:
        return Path(incident.report_path)
    base = folder / f"{incident.opened_at:%Y-%m-%d}-{slug(record)}.md"
    return base.with_name(f"{base.stem}-{record.id}.md") if taken(base) else base


def _at(when: datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC" if when is not None else "—"


def _lasted(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{span.total_seconds():.1f} s"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _facts(facts: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in facts.items()) or "—"


@dataclass(frozen=True)
class _Line:
    at: datetime
    what: str
    flow_run_id: str | None


def timeline(record: IncidentRecord) -> list[_Line]:
    """When each alert started firing (Alertmanager's startsAt), then every recorded event."""
    lines = [
        _Line(a.starts_at, f"alert {a.alertname or a.fingerprint} started firing", None)
        for a in record.alerts
    ]
    for e in record.events:
        what = f"**{e.status}**: {e.summary}" if e.status is not None else e.summary
        lines.append(_Line(e.at, what, e.flow_run_id))
    return sorted(lines, key=lambda line: line.at)


def render_report(record: IncidentRecord, *, ui_url: str | None = None) -> str:
    link = flow_run_linker(ui_url)
    incident = record.incident
    scenario = Scenario(incident.scenario) if incident.scenario else None
    branch = f"{scenario.value} — {scenario.runbook_title}" if scenario else "none (unclassified)"
    lines = [
        f"# Incident {record.id}: {incident.title}",
        "",
        "| | |",
        "| --- | --- |",
        f"| status | **{incident.status}** |",
        f"| runbook scenario | {branch} |",
        f"| target | `{incident.target_key}` |",
        f"| environment | {incident.environment} |",
        f"| trigger | {incident.trigger} |",
        f"| started | {_at(incident.started_at)} |",
        f"| opened | {_at(incident.opened_at)} |",
        f"| mitigated (verified) | {_at(incident.verified_at)} |",
        f"| resolved | {_at(incident.resolved_at)} |",
        f"| triage | {link(incident.triage_flow_run_id)} |",
        "",
        *_timeline(record, link),
        *_blast_radius(record),
        *_root_cause(record),
        *_fixes(record, link),
        *_follow_ups(record, link),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _timeline(record: IncidentRecord, link: Link) -> list[str]:
    lines = timeline(record)
    rows = ["## Timeline", "", "| time (UTC) | what happened | flow run |", "| --- | --- | --- |"]
    rows += [
        f"| {line.at:%H:%M:%S} | {_cell(line.what)} | {link(line.flow_run_id)} |" for line in lines
    ]
    if lines:
        rows.insert(2, f"All times on {lines[0].at:%Y-%m-%d}, UTC, unless a line says otherwise.\n")
    return [*rows, ""]


def _blast_radius(record: IncidentRecord) -> list[str]:
    incident = record.incident
    affected = [f"`{incident.target_key}`"]
    for a in record.alerts:
        labels = {
            k: v for k, v in a.labels.items() if k in ("namespace", "pod", "deployment", "service")
        }
        where = ", ".join(f"{k}={v}" for k, v in labels.items())
        affected.append(
            f"alert **{a.alertname or a.fingerprint}** ({where or 'no object labels'}; "
            f"{a.status}, received {a.received_count} times)"
        )
    end = incident.resolved_at or incident.verified_at
    if end is not None:
        lasted = f"{_lasted(end - incident.started_at)} from the first signal to " + (
            "resolution" if incident.resolved_at else "the verified mitigation (not resolved yet)"
        )
    else:
        lasted = f"still open ({incident.status}) since {_at(incident.started_at)}"
    lines = [
        "## Blast radius",
        "",
        "- affected: " + "; ".join(affected),
        f"- for how long: {lasted}",
    ]
    if incident.verified_at is not None:
        lines.append(
            f"- time to mitigate: {_lasted(incident.verified_at - incident.opened_at)} from the "
            "first evidence this tool saw to the verified fix"
            + (" (automated)" if incident.automated else "")
        )
    return [*lines, ""]


def _root_cause(record: IncidentRecord) -> list[str]:
    incident = record.incident
    lines = ["## Root cause", "", incident.root_cause or "(not diagnosed: no triage decision)", ""]
    if incident.evidence:
        lines += ["Evidence:", "", *[f"- {_cell(e)}" for e in incident.evidence], ""]
    if incident.resolution:
        lines += [f"Resolution: {incident.resolution}", ""]
    return lines


def _fixes(record: IncidentRecord, link: Link) -> list[str]:
    applied = [a for a in record.actions if not a.dry_run]
    planned = [a for a in record.actions if a.dry_run]
    lines = ["## Fixes applied", ""]
    if applied:
        lines += [
            "| when | change | status | before | after | attempts | flow run |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {_at(a.finished_at or a.started_at)} | `{_cell(a.summary)}` | {a.status} | "
            f"{_cell(_facts(a.before))} | {_cell(_facts(a.after))} | {a.attempts} | "
            f"{link(a.flow_run_id)} |"
            for a in applied
        ]
        failed = [a for a in applied if a.status in (ActionStatus.FAILED, ActionStatus.IN_PROGRESS)]
        lines += [
            f"\n- {a.status}: `{a.summary}`: {a.error or 'no answer recorded'}" for a in failed
        ]
        reverts = [a for a in applied if a.revert]
        lines += [
            f"- to undo `{a.summary}`: {a.revert.get('action')} → {a.revert.get('value')}"
            for a in reverts
            if a.revert is not None
        ]
    else:
        lines.append("Nothing was changed by this tool.")
    if planned:
        lines += ["", "Planned only (dry runs, validated by the API server, not applied):", ""]
        lines += [f"- `{a.summary}` ({link(a.flow_run_id)})" for a in planned]
    return [*lines, ""]


def _follow_ups(record: IncidentRecord, link: Link) -> list[str]:
    lines = ["## Follow-ups", ""]
    if not record.follow_ups:
        return [*lines, "None.", ""]
    for f in record.follow_ups:
        status = FollowUpStatus(f.status)
        box = "x" if status.is_closed else " "
        lines.append(f"- [{box}] **{f.priority}** {f.title} — {status}")
        if f.scheduled_flow_run_id:
            lines.append(
                f"  - scheduled as {link(f.scheduled_flow_run_id)} for {_at(f.scheduled_for)} "
                f"(flow `{f.flow}`)"
            )
        if f.condition:
            lines.append(f"  - when: {f.condition}")
        if status.is_closed:
            lines.append(f"  - closed {_at(f.closed_at)} by {f.closed_by}: {f.note}")
        elif f.note:
            lines.append(f"  - note: {f.note}")
    if IncidentStatus(record.incident.status).is_open:
        lines += ["", f"The incident is still **{record.incident.status}**."]
    return [*lines, ""]
