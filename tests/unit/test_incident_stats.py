"""The effectiveness rules of `store.stats.figures`, over hand-built incidents (no database)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store.models import Incident, IncidentStatus
from store.stats import EffectivenessReport, ScenarioFigures, figures, percentile

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def incident(
    scenario: str | None = "A",
    target: str = "alphaswarm/alphaswarm-core",
    *,
    opened: timedelta = timedelta(0),
    mitigated_after: float | None = None,
    escalated: bool = False,
    status: IncidentStatus = IncidentStatus.RESOLVED,
    **overrides: Any,
) -> Incident:
    """An incident opened at T0 + `opened`; `mitigated_after` seconds later a flow's change was
    verified (automated), when given."""
    opened_at = T0 + opened
    fields: dict[str, Any] = {
        "title": f"{scenario} on {target}",
        "scenario": scenario,
        "target_key": target,
        "status": status,
        "started_at": opened_at,
        "opened_at": opened_at,
    }
    if mitigated_after is not None:
        fields |= {
            "automated": True,
            "verified_at": opened_at + timedelta(seconds=mitigated_after),
        }
    if escalated:
        fields["escalated_at"] = opened_at + timedelta(minutes=5)
    return Incident(**{**fields, **overrides})


def row(report: EffectivenessReport, scenario: str) -> ScenarioFigures:
    found = report.scenario(scenario)
    assert found is not None, f"no row for {scenario}"
    return found


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# --- percentiles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.5, 7.0),
        ([7.0], 0.95, 7.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([3.0, 1.0, 2.0], 0.5, 2.0),  # unsorted input
        ([float(s) for s in range(1, 21)], 0.5, 10.5),
        ([float(s) for s in range(1, 21)], 0.95, 19.05),  # h = 19 * 0.95 = 18.05
        ([float(s) for s in range(1, 21)], 0.0, 1.0),
        ([float(s) for s in range(1, 21)], 1.0, 20.0),
        ([10.0, 20.0, 30.0, 40.0, 1000.0], 0.95, 808.0),  # 40 + 0.8 * (1000 - 40)
    ],
)
def test_percentile_interpolates_linearly_between_closest_ranks(
    values: list[float], q: float, expected: float | None
) -> None:
    assert percentile(values, q) == (None if expected is None else pytest.approx(expected))


def test_percentile_matches_the_standard_library_inclusive_method() -> None:
    values = [3.0, 14.0, 15.0, 92.0, 65.0, 35.0, 89.0, 79.0, 32.0, 38.0, 46.0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # cuts[k-1] is the k-th
    assert percentile(values, 0.95) == pytest.approx(cuts[94])
    assert percentile(values, 0.5) == pytest.approx(statistics.median(values))


@pytest.mark.parametrize("q", [-0.1, 1.5, 95])
def test_percentile_refuses_a_quantile_outside_0_to_1(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], q)


# --- counts ---------------------------------------------------------------------------------


def test_no_incidents_give_an_empty_report_with_an_empty_overall_row() -> None:
    report = figures([])
    assert report.by_scenario == ()
    assert report.overall == ScenarioFigures(
        scenario="all",
        incidents=0,
        mitigated_automatically=0,
        escalated=0,
        open=0,
        time_to_mitigate_median_seconds=None,
        time_to_mitigate_p95_seconds=None,
        repeats_within_24h=0,
    )


def test_counts_automated_escalated_and_open_per_scenario() -> None:
    report = figures(
        [
            incident("A", "ns/a1", mitigated_after=30),
            incident("A", "ns/a2", mitigated_after=60, status=IncidentStatus.VERIFIED),
            incident("A", "ns/a3", escalated=True, status=IncidentStatus.ESCALATED),
            # escalated first, then a later flow run mitigated it: counts as both
            incident("B", "ns/b1", escalated=True, mitigated_after=600),
            incident("B", "ns/b2", status=IncidentStatus.TRIAGED),
        ]
    )
    a, b = row(report, "A"), row(report, "B")
    assert (a.incidents, a.mitigated_automatically, a.escalated, a.open) == (3, 2, 1, 2)
    assert (b.incidents, b.mitigated_automatically, b.escalated, b.open) == (2, 1, 1, 1)
    overall = report.overall
    assert overall.scenario == "all"
    assert (overall.incidents, overall.mitigated_automatically) == (5, 3)
    assert (overall.escalated, overall.open) == (2, 3)


def test_rows_are_in_letter_order_with_unclassified_last() -> None:
    report = figures(
        [
            incident(None, "ns/x"),
            incident("F", "ns/f"),
            incident("A", "ns/a"),
            incident("C", "ns/c"),
        ]
    )
    assert [r.scenario for r in report.by_scenario] == ["A", "C", "F", "unclassified"]


def test_unclassified_is_last_even_after_names_that_sort_after_it() -> None:
    report = figures([incident(None, "ns/x"), incident("zz", "ns/z"), incident("B", "ns/b")])
    assert [r.scenario for r in report.by_scenario] == ["B", "zz", "unclassified"]


def test_unclassified_incidents_get_their_own_row_and_count_in_the_overall_row() -> None:
    report = figures(
        [
            incident(None, "ns/x", escalated=True, status=IncidentStatus.ESCALATED),
            incident(None, "ns/y"),
            incident("A", "ns/a", mitigated_after=5),
        ]
    )
    unclassified = row(report, "unclassified")
    assert (unclassified.incidents, unclassified.escalated, unclassified.open) == (2, 1, 1)
    assert unclassified.time_to_mitigate_median_seconds is None
    assert report.overall.incidents == 3
    assert report.scenario("B") is None


# --- time to mitigate -----------------------------------------------------------------------


def test_time_to_mitigate_over_durations_of_1_to_20_seconds() -> None:
    report = figures(
        [incident("A", f"ns/t{s}", opened=hours(s), mitigated_after=s) for s in range(20, 0, -1)]
    )
    a = row(report, "A")
    assert a.time_to_mitigate_median_seconds == pytest.approx(10.5)
    assert a.time_to_mitigate_p95_seconds == pytest.approx(19.05)


def test_time_to_mitigate_counts_only_automated_verified_incidents() -> None:
    report = figures(
        [
            incident("A", "ns/a1", mitigated_after=100),
            # a human fixed it: verified_at set, but not the runbook's time
            incident("A", "ns/a2", verified_at=T0 + timedelta(seconds=9000)),
            # automated but its verification time is missing: counted, but not timed
            incident("A", "ns/a3", automated=True),
            incident("A", "ns/a4", escalated=True),
        ]
    )
    a = row(report, "A")
    assert a.mitigated_automatically == 2
    assert a.time_to_mitigate_median_seconds == pytest.approx(100.0)
    assert a.time_to_mitigate_p95_seconds == pytest.approx(100.0)


def test_time_to_mitigate_is_none_without_an_automated_incident() -> None:
    report = figures([incident("A", escalated=True), incident("B")])
    for r in (*report.by_scenario, report.overall):
        assert r.time_to_mitigate_median_seconds is None
        assert r.time_to_mitigate_p95_seconds is None


def test_the_overall_percentiles_come_from_every_duration_not_from_the_rows() -> None:
    # A: 1..10 s, B: 1000 s once. Averaging the rows' medians would give (5.5 + 1000) / 2.
    incidents = [incident("A", f"ns/a{s}", mitigated_after=s) for s in range(1, 11)]
    incidents.append(incident("B", "ns/b", mitigated_after=1000))
    report = figures(incidents)
    durations = [float(s) for s in range(1, 11)] + [1000.0]
    assert row(report, "A").time_to_mitigate_median_seconds == pytest.approx(5.5)
    assert row(report, "B").time_to_mitigate_median_seconds == pytest.approx(1000.0)
    assert report.overall.time_to_mitigate_median_seconds == pytest.approx(6.0)
    assert report.overall.time_to_mitigate_p95_seconds == pytest.approx(percentile(durations, 0.95))
    assert report.overall.time_to_mitigate_p95_seconds == pytest.approx(505.0)  # 10 + .5 * 990


# --- repeats within 24 h --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "incidents", "repeats"),
    [
        ("alone", [incident("A", "ns/x")], 0),
        (
            "same scenario and target 23 h later",
            [incident("A", "ns/x"), incident("A", "ns/x", opened=hours(23))],
            1,
        ),
        (
            "exactly 24 h later still counts",
            [incident("A", "ns/x"), incident("A", "ns/x", opened=hours(24))],
            1,
        ),
        (
            "24 h and a second later does not",
            [
                incident("A", "ns/x"),
                incident("A", "ns/x", opened=hours(24) + timedelta(seconds=1)),
            ],
            0,
        ),
        (
            "a different target is not a repeat",
            [incident("A", "ns/x"), incident("A", "ns/y", opened=hours(1))],
            0,
        ),
        (
            "a different scenario on the same target is not a repeat",
            [incident("A", "ns/x"), incident("B", "ns/x", opened=hours(1))],
            0,
        ),
        (
            "a chain of three counts two",
            [
                incident("A", "ns/x"),
                incident("A", "ns/x", opened=hours(20)),
                incident("A", "ns/x", opened=hours(40)),  # 40 h after the first, 20 h after #2
            ],
            2,
        ),
        (
            "input order does not matter (newest first, as the store lists them)",
            [
                incident("A", "ns/x", opened=hours(40)),
                incident("A", "ns/x", opened=hours(20)),
                incident("A", "ns/x"),
            ],
            2,
        ),
        (
            "a gap starts a new run",
            [
                incident("A", "ns/x"),
                incident("A", "ns/x", opened=hours(2)),
                incident("A", "ns/x", opened=hours(50)),
                incident("A", "ns/x", opened=hours(51)),
            ],
            2,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_repeats_within_24h(case: str, incidents: list[Incident], repeats: int) -> None:
    report = figures(incidents)
    assert report.overall.repeats_within_24h == repeats, case
    assert sum(r.repeats_within_24h for r in report.by_scenario) == repeats


def test_repeats_are_counted_in_the_row_of_their_scenario() -> None:
    report = figures(
        [
            incident("A", "ns/x"),
            incident("A", "ns/x", opened=hours(1)),
            incident("B", "ns/x", opened=hours(2)),
            incident("B", "ns/x", opened=hours(3)),
            incident("B", "ns/x", opened=hours(4)),
            incident(None, "ns/x", opened=hours(5)),
            incident(None, "ns/x", opened=hours(6)),
            incident(None, "ns/z", opened=hours(6)),
        ]
    )
    assert row(report, "A").repeats_within_24h == 1
    assert row(report, "B").repeats_within_24h == 2
    assert row(report, "unclassified").repeats_within_24h == 1
    assert report.overall.repeats_within_24h == 4


def test_figures_are_frozen() -> None:
    report = figures([incident("A")])
    with pytest.raises(ValueError, match="frozen"):
        report.overall.incidents = 99  # type: ignore[misc]
