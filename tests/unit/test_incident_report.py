"""The post-incident report is a pure rendering of the store's record: every section the runbook
asks for, each step linked to its flow run, and a file name that never overwrites another
incident's report; and how alerts and decisions become the incident's target key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.models import (
    ActionStatus,
    EventKind,
    FollowUpStatus,
    Incident,
    IncidentAction,
    IncidentAlert,
    IncidentEvent,
    IncidentFollowUp,
    IncidentStatus,
)
from store.queries import IncidentRecord
from tasks.models.diagnosis import Scenario, TriageDecision
from tasks.records.report import flow_run_linker, render_report, report_path, slug
from tasks.records.steps import alert_target_key, decided_target_key
from tests.unit.test_triage import alerts

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
RUN = "6a6c54b0-2e45-4818-9500-1ebd48fb44f0"
UI = "http://127.0.0.1:4200"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(status: IncidentStatus = IncidentStatus.RESOLVED, **incident: object) -> IncidentRecord:
    fields: dict[str, object] = {
        "id": 7,
        "title": "Runbook A (single pod crashes) on alphaswarm/alphaswarm-core",
        "status": status,
        "scenario": "A",
        "target_key": "A:alphaswarm/alphaswarm-core",
        "namespace": "alphaswarm",
        "target": "alphaswarm-core",
        "started_at": T0,
        "opened_at": at(30),
        "triaged_at": at(31),
        "mitigating_at": at(32),
        "verified_at": at(45),
        "resolved_at": at(50) if status is IncidentStatus.RESOLVED else None,
        "root_cause": "one pod of alphaswarm-core crash-loops (alphaswarm-core-0): runbook A",
        "evidence": ["alphaswarm-core: crash-looping alphaswarm-core-0"],
        "resolution": "the fix held for 60 s" if status is IncidentStatus.RESOLVED else "",
        "automated": True,
        "triage_flow_run_id": RUN,
    }
    return IncidentRecord(
        incident=Incident(**{**fields, **incident}),
        alerts=(
            IncidentAlert(
                incident_id=7,
                fingerprint="a1f0",
                alertname="KubePodCrashLooping",
                labels={"namespace": "alphaswarm", "pod": "alphaswarm-core-0", "severity": "x"},
                starts_at=T0,
                first_received_at=at(30),
                last_received_at=at(30),
            ),
        ),
        decisions=(),
        actions=(
            IncidentAction(
                incident_id=7,
                change_key="k1",
                action="rollout-restart",
                target_key="Deployment/alphaswarm/alphaswarm-core",
                status=ActionStatus.APPLIED,
                dry_run=False,
                summary="kubectl rollout restart -n alphaswarm deployment/alphaswarm-core",
                before={"restartedAt": None, "generation": 1},
                after={"restartedAt": "2026-11-28T10:00:33Z", "generation": 2},
                attempts=1,
                flow_run_id=RUN,
                started_at=at(33),
                finished_at=at(33),
            ),
            IncidentAction(
                incident_id=7,
                change_key="k0",
                action="rollout-restart",
                target_key="Deployment/alphaswarm/alphaswarm-core",
                status=ActionStatus.PLANNED,
                dry_run=True,
                summary="kubectl rollout restart (planned)",
                started_at=at(31),
            ),
        ),
        follow_ups=(
            IncidentFollowUp(
                incident_id=7,
                key="regression-test-7",
                kind="regression-test",
                priority="P2",
                title="add a regression test: KubePodCrashLooping must lead triage to scenario A",
                status=FollowUpStatus.OPEN,
                created_at=at(31),
            ),
        ),
        events=(
            IncidentEvent(
                incident_id=7,
                at=at(30),
                kind=EventKind.TRANSITION,
                status=IncidentStatus.OPEN,
                summary="opened on 1 alert(s)",
            ),
            IncidentEvent(
                incident_id=7,
                at=at(45),
                kind=EventKind.TRANSITION,
                status=IncidentStatus.VERIFIED,
                summary="verified: rollout complete",
                flow_run_id=RUN,
            ),
        ),
    )


def test_the_report_has_every_section_the_runbook_asks_for() -> None:
    text = render_report(record(), ui_url=UI)
    sections = ["## Timeline", "## Blast radius", "## Root cause", "## Fixes applied"]
    positions = [text.index(s) for s in [*sections, "## Follow-ups"]]
    assert positions == sorted(positions)
    assert text.startswith("# Incident 7: Runbook A (single pod crashes)")
    assert "| status | **resolved** |" in text
    # The timeline starts with the alert's own start, before the tool saw it.
    lines = text[text.index("## Timeline") : text.index("## Blast radius")].splitlines()
    rows = [line for line in lines if line.startswith("| 10:")]
    assert rows[0].startswith("| 10:00:00 | alert KubePodCrashLooping started firing")
    assert "**verified**: verified: rollout complete" in rows[-1]
    # Blast radius: what, and for how long.
    assert "pod=alphaswarm-core-0" in text and "severity" not in text.split("## Blast")[1][:400]
    assert "50.0 s from the first signal to resolution" in text
    assert "time to mitigate: 15.0 s" in text and "(automated)" in text
    # Root cause, fixes (applied with before/after, planned apart), follow-ups.
    assert "one pod of alphaswarm-core crash-loops" in text
    assert "generation=1" in text and "generation=2" in text
    assert "Planned only (dry runs" in text and "kubectl rollout restart (planned)" in text
    assert "- [ ] **P2** add a regression test" in text


def test_every_step_links_to_its_flow_run_when_the_ui_is_known() -> None:
    linked = render_report(record(), ui_url=UI + "/")
    assert f"[run 6a6c54b0]({UI}/runs/flow-run/{RUN})" in linked
    plain = render_report(record(), ui_url=None)
    assert "/runs/flow-run/" not in plain and f"`{RUN}`" in plain
    assert flow_run_linker(UI)(None) == "—"


def test_an_open_incident_says_so() -> None:
    text = render_report(record(IncidentStatus.ESCALATED, verified_at=None, automated=False))
    assert "still open (escalated) since 2026-11-28 10:00:00 UTC" in text
    assert "The incident is still **escalated**." in text
    assert "time to mitigate" not in text


def test_a_closed_follow_up_is_ticked_with_who_closed_it() -> None:
    base = record()
    p1 = IncidentFollowUp(
        incident_id=7,
        key="revert-k1",
        kind="revert",
        priority="P1",
        title="revert ALPHASWARM_AUTH_ENFORCE on alphaswarm/alphaswarm-core to enforce",
        flow="revert-auth-enforce",
        status=FollowUpStatus.DONE,
        scheduled_flow_run_id=RUN,
        scheduled_for=at(900),
        created_at=at(40),
        closed_at=at(1000),
        closed_by="flow run revert-auth-enforce/alphaswarm-core",
        note="ALPHASWARM_AUTH_ENFORCE is enforce again",
    )
    text = render_report(
        IncidentRecord(
            incident=base.incident,
            alerts=base.alerts,
            decisions=(),
            actions=base.actions,
            follow_ups=(p1,),
            events=base.events,
        ),
        ui_url=UI,
    )
    assert "- [x] **P1** revert ALPHASWARM_AUTH_ENFORCE" in text
    assert f"scheduled as [run 6a6c54b0]({UI}/runs/flow-run/{RUN})" in text
    assert "closed 2026-11-28 10:16:40 UTC by flow run revert-auth-enforce/alphaswarm-core" in text


def test_the_file_is_named_by_day_and_slug_and_never_takes_another_incidents_name(
    tmp_path: Path,
) -> None:
    r = record()
    assert slug(r) == "pod-crash-alphaswarm-core"
    free = report_path(r, tmp_path, taken=lambda p: False)
    assert free == tmp_path / "2026-11-28-pod-crash-alphaswarm-core.md"
    assert report_path(r, tmp_path, taken=lambda p: True).name == (
        "2026-11-28-pod-crash-alphaswarm-core-7.md"
    )
    kept = record(report_path="/srv/reports/mine.md")
    assert report_path(kept, tmp_path, taken=lambda p: True) == Path("/srv/reports/mine.md")
    unclassified = record(scenario=None, target=None, target_key="alert:alphaswarm/Weird Pod!")
    assert slug(unclassified) == "incident-weird-pod"


@pytest.mark.parametrize(
    ("labels", "key"),
    [
        (
            {"namespace": "alphaswarm", "pod": "alphaswarm-core-0"},
            "alert:alphaswarm/alphaswarm-core-0",
        ),
        (
            {"namespace": "alphaswarm", "deployment": "alphaswarm-core"},
            "alert:alphaswarm/alphaswarm-core",
        ),
        (  # a Deployment's pod (<deployment>-<pod-template-hash>-<suffix>) is its Deployment
            {"namespace": "alphaswarm", "pod": "alphaswarm-core-h84rzk9bqs-2fb6l"},
            "alert:alphaswarm/alphaswarm-core",
        ),
        (  # not a Deployment's pod: stays the pod
            {"namespace": "alphaswarm", "pod": "alphaswarm-core-7d9f-a"},
            "alert:alphaswarm/alphaswarm-core-7d9f-a",
        ),
        ({"service": "alphaswarm-client"}, "alert:-/alphaswarm-client"),
        ({}, "alert:JwksUnreachable"),
    ],
)
def test_an_alert_points_at_its_object_until_triage_decides(
    labels: dict[str, str], key: str
) -> None:
    (alert,) = alerts("JwksUnreachable")
    alert = alert.model_copy(update={"labels": {"alertname": "JwksUnreachable", **labels}})
    assert alert_target_key([alert]) == key


def test_a_decision_keys_the_incident_by_scenario_and_target() -> None:
    decision = TriageDecision(
        scenario=Scenario.POD_CRASH, reason="r", namespace="alphaswarm", target="alphaswarm-core"
    )
    assert decided_target_key(decision) == "A:alphaswarm/alphaswarm-core"
    assert decided_target_key(TriageDecision(scenario=None, reason="unclear")) is None
