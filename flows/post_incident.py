"""The runbook's post-incident routine.

    Open an incident report in alphaswarm_docs/incidents/<yyyy-mm-dd>-<slug>.md.
    Capture: timeline, blast radius, root cause, fixes applied, follow-ups.
    If a hard rule was bypassed, schedule the revert as a P1 task.
    Add a regression test to prevent the same class of incident.

The report is rendered from the incident store (`tasks.records.report`), written under
REMEDIATE_INCIDENTS__REPORTS_DIR and published as a markdown artifact of the run; each step
links to the Prefect flow run that took it. The P1 revert and the regression-test follow-up
are created when the incident is triaged and mitigated (`tasks.records.steps`); the report lists
them with their state. Triage runs this flow when an incident resolves or escalates (or is
mitigated with a hard rule bypassed), the revert when it closes its P1, and `remediate
incidents report ID` re-renders it on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.settings import get_current_settings
from pydantic import BaseModel, ConfigDict, Field

from flows.runs import named, tell
from tasks.records.artifacts import artifact_key
from tasks.records.report import render_report, report_path
from tasks.records.steps import load_incident, record_report
from tasks.settings import Settings


class PostIncidentParams(BaseModel):
    incident_id: int = Field(ge=1)
    reports_dir: Path | None = Field(
        default=None, description="where to write it; default REMEDIATE_INCIDENTS__REPORTS_DIR"
    )


class IncidentReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident_id: int
    path: Path
    markdown: str


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(path: Path, markdown: str) -> Path:
    """Written next to itself and renamed into place: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(markdown, encoding="utf-8")
    partial.replace(path)
    return path


def _subject(p: Mapping[str, Any]) -> str:
    return f"incident {p.get('incident_id')}"


@flow(name="post-incident", flow_run_name=named("post-incident", _subject))
def post_incident(incident_id: int, reports_dir: Path | None = None) -> IncidentReport:
    """Render the incident's report from the store, write it, publish it as an artifact.

    Args:
        incident_id: the incident in the store (`remediate incidents list` shows the ids)
        reports_dir: where to write the report; unset: the configured reports directory
            (REMEDIATE_INCIDENTS__REPORTS_DIR)
    """
    params = PostIncidentParams(incident_id=incident_id, reports_dir=reports_dir)
    record = load_incident(params.incident_id)
    folder = params.reports_dir or Settings().incidents.reports_dir
    path = report_path(record, folder, taken=lambda p: p.exists())
    markdown = render_report(record, ui_url=get_current_settings().ui_url)
    write_report(path, markdown)
    record_report(params.incident_id, str(path))
    create_markdown_artifact(
        markdown,
        key=artifact_key("incident", str(params.incident_id), "report"),
        description=f"Post-incident report ({path})",
    )
    tell("incident %d: report written to %s", params.incident_id, path)
    return IncidentReport(incident_id=params.incident_id, path=path, markdown=markdown)
