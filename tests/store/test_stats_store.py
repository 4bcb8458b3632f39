"""`store.stats.effectiveness` over a real, migrated SQLite database: the figures as read back
(timestamps through the UTC column type) and the `since` and `scenarios` filters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.engine import dispose_all, session_for
from store.models import Incident, IncidentStatus
from store.schema import upgrade
from store.stats import EffectivenessReport, ScenarioFigures, effectiveness

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/s.db"
    upgrade(url)
    yield url
    dispose_all()


def recorded(
    scenario: str | None,
    target: str,
    *,
    opened_hours: float,
    mitigated_after: float | None = None,
    escalated: bool = False,
    status: IncidentStatus = IncidentStatus.RESOLVED,
) -> Incident:
    opened_at = T0 + timedelta(hours=opened_hours)
    resolved = status is IncidentStatus.RESOLVED
    return Incident(
        title=f"{scenario} on {target}",
        scenario=scenario,
        target_key=target,
        # open_key is unique while open: the store's own rule, kept here too
        open_key=None if resolved else target,
        status=status,
        started_at=opened_at,
        opened_at=opened_at,
        automated=mitigated_after is not None,
        verified_at=None
        if mitigated_after is None
        else opened_at + timedelta(seconds=mitigated_after),
        escalated_at=opened_at + timedelta(minutes=5) if escalated else None,
        resolved_at=opened_at + timedelta(hours=1) if resolved else None,
    )


@pytest.fixture
def populated(url: str) -> str:
    incidents = [
        recorded("A", "alphaswarm/core", opened_hours=0, mitigated_after=40),
        recorded("A", "alphaswarm/core", opened_hours=10, mitigated_after=20),  # a repeat
        recorded("A", "alphaswarm/api", opened_hours=48, mitigated_after=60),
        recorded(
            "C",
            "alphaswarm/worker",
            opened_hours=30,
            escalated=True,
            status=IncidentStatus.ESCALATED,
        ),
        recorded(None, "alphaswarm/gateway", opened_hours=50, status=IncidentStatus.TRIAGED),
    ]
    with session_for(url) as session:
        session.add_all(incidents)
    return url


def report_of(
    url: str, *, since: datetime | None = None, scenarios: Sequence[str] = ()
) -> EffectivenessReport:
    with session_for(url) as session:
        return effectiveness(session, since=since, scenarios=scenarios)


def row(report: EffectivenessReport, scenario: str) -> ScenarioFigures:
    found = report.scenario(scenario)
    assert found is not None, f"no row for {scenario}"
    return found


def test_an_empty_store_gives_an_empty_report(url: str) -> None:
    report = report_of(url)
    assert report.by_scenario == ()
    assert report.overall.incidents == 0


def test_figures_of_every_incident(populated: str) -> None:
    report = report_of(populated)
    assert [r.scenario for r in report.by_scenario] == ["A", "C", "unclassified"]
    a = row(report, "A")
    assert (a.incidents, a.mitigated_automatically, a.escalated, a.open) == (3, 3, 0, 0)
    assert a.time_to_mitigate_median_seconds == pytest.approx(40.0)
    assert a.time_to_mitigate_p95_seconds == pytest.approx(58.0)  # 40 + 0.9 * (60 - 40)
    assert a.repeats_within_24h == 1
    c = row(report, "C")
    assert (c.incidents, c.mitigated_automatically, c.escalated, c.open) == (1, 0, 1, 1)
    assert c.time_to_mitigate_median_seconds is None
    unclassified = row(report, "unclassified")
    assert (unclassified.incidents, unclassified.open) == (1, 1)
    overall = report.overall
    assert (overall.incidents, overall.mitigated_automatically, overall.escalated) == (5, 3, 1)
    assert (overall.open, overall.repeats_within_24h) == (2, 1)
    assert overall.time_to_mitigate_median_seconds == pytest.approx(40.0)


def test_since_keeps_incidents_opened_at_or_after_it(populated: str) -> None:
    report = report_of(populated, since=T0 + timedelta(hours=10))
    assert row(report, "A").incidents == 2
    assert report.overall.incidents == 4
    # the earlier incident on alphaswarm/core is outside the window: no repeat within it
    assert report.overall.repeats_within_24h == 0


def test_since_after_everything_gives_an_empty_report(populated: str) -> None:
    assert report_of(populated, since=T0 + timedelta(days=30)).overall.incidents == 0


def test_scenarios_select_rows_and_leave_unclassified_out(populated: str) -> None:
    report = report_of(populated, scenarios=["C"])
    assert [r.scenario for r in report.by_scenario] == ["C"]
    assert report.overall.incidents == 1
    both = report_of(populated, scenarios=["A", "C"])
    assert [r.scenario for r in both.by_scenario] == ["A", "C"]
    assert both.overall.incidents == 4


def test_filters_combine(populated: str) -> None:
    report = report_of(populated, scenarios=["A"], since=T0 + timedelta(hours=1))
    a = row(report, "A")
    assert (a.incidents, a.repeats_within_24h) == (2, 0)
    assert a.time_to_mitigate_median_seconds == pytest.approx(40.0)  # 20 s and 60 s
