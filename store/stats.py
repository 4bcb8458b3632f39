"""Effectiveness figures: how many incidents the runbook mitigated by itself, and how fast.

The figures answer the questions asked of an automated runbook: does it fix things without a
human (`mitigated_automatically` against `escalated`), how long does that take (the median and
95th percentile of time to mitigate), and do its fixes hold (`repeats_within_24h`: the same
problem on the same target coming straight back means the mitigation treated a symptom).

`figures()` is pure (incidents in, a report out) so the rules are table-tested without a
database; `effectiveness()` only reads the incidents and hands them to it. The overall row is
computed from the incidents themselves, never from the per-scenario rows: percentiles do not
average.

Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, the default
of numpy and R, Excel's PERCENTILE.INC, `statistics.quantiles(method="inclusive")`): for n
sorted durations x[0..n-1] and a fraction q, h = (n - 1) * q and the percentile is
x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). One duration is every
percentile of itself, and the 0.5 percentile is exactly `statistics.median`. Chosen over nearest
rank so that "median" means what a reader expects for an even count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import groupby

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from store.models import Incident, IncidentStatus
from store.queries import list_incidents

UNCLASSIFIED = "unclassified"  # the row of incidents triage gave no scenario
OVERALL = "all"  # the row of every incident selected
REPEAT_WINDOW = timedelta(hours=24)


class ScenarioFigures(BaseModel):
    """The figures of one scenario (a runbook letter, `unclassified` or `all`)."""

    model_config = ConfigDict(frozen=True)

    scenario: str
    incidents: int
    mitigated_automatically: int  # `automated`: a flow's change was verified
    escalated: int  # ever escalated (`escalated_at` set), even if resolved since
    open: int  # not resolved yet
    time_to_mitigate_median_seconds: float | None  # None: no automated, verified incident
    time_to_mitigate_p95_seconds: float | None
    repeats_within_24h: int


class EffectivenessReport(BaseModel):
    """Per-scenario rows (letters in order, `unclassified` last) and the overall row."""

    model_config = ConfigDict(frozen=True)

    by_scenario: tuple[ScenarioFigures, ...]
    overall: ScenarioFigures

    def scenario(self, name: str) -> ScenarioFigures | None:
        """The row of `name`, or None when no selected incident had that scenario."""
        return next((row for row in self.by_scenario if row.scenario == name), None)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 <= q <= 1) by linear interpolation (see the module docstring);
    None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    lower = math.floor(h)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (h - lower) * (ordered[upper] - ordered[lower])


def time_to_mitigate_seconds(incident: Incident) -> float | None:
    """Opened to verified, for an incident a flow mitigated; None otherwise, because a human's
    fix (or an unverified one) is not the runbook's time."""
    if not incident.automated or incident.verified_at is None:
        return None
    return (incident.verified_at - incident.opened_at).total_seconds()


def repeat_positions(incidents: Iterable[Incident]) -> set[int]:
    """The positions (in `incidents`) of the repeats: incidents that opened at most 24 h after
    an earlier incident of the same scenario and target opened. Each is compared with the one
    just before it on that target, so a chain of three within 24 h of each other is two repeats
    even if the third opened more than 24 h after the first."""
    indexed = list(enumerate(incidents))
    found: set[int] = set()
    for _, group in groupby(sorted(indexed, key=_problem_then_time), key=_problem):
        previous: datetime | None = None
        for position, incident in group:
            if previous is not None and incident.opened_at - previous <= REPEAT_WINDOW:
                found.add(position)
            previous = incident.opened_at
    return found


def _problem(item: tuple[int, Incident]) -> tuple[bool, str, str]:
    """What makes two incidents the same problem: the scenario (unclassified counts as one
    scenario of its own) and the target."""
    incident = item[1]
    return (incident.scenario is None, incident.scenario or "", incident.target_key)


def _problem_then_time(item: tuple[int, Incident]) -> tuple[tuple[bool, str, str], datetime]:
    return (_problem(item), item[1].opened_at)


def _row(scenario: str, incidents: Sequence[Incident], repeated: int) -> ScenarioFigures:
    durations = [d for d in map(time_to_mitigate_seconds, incidents) if d is not None]
    return ScenarioFigures(
        scenario=scenario,
        incidents=len(incidents),
        mitigated_automatically=sum(1 for i in incidents if i.automated),
        escalated=sum(1 for i in incidents if i.escalated_at is not None),
        open=sum(1 for i in incidents if i.status is not IncidentStatus.RESOLVED),
        time_to_mitigate_median_seconds=percentile(durations, 0.5),
        time_to_mitigate_p95_seconds=percentile(durations, 0.95),
        repeats_within_24h=repeated,
    )


def _scenario_order(name: str) -> tuple[bool, str]:
    return (name == UNCLASSIFIED, name)


def figures(incidents: Sequence[Incident]) -> EffectivenessReport:
    """The report over exactly these incidents (in any order): one row per scenario present,
    ordered by letter with `unclassified` last, and the overall row `all`."""
    repeated = repeat_positions(incidents)
    by_name: dict[str, list[Incident]] = {}
    repeats_by_name: dict[str, int] = {}
    for position, incident in enumerate(incidents):
        name = incident.scenario if incident.scenario is not None else UNCLASSIFIED
        by_name.setdefault(name, []).append(incident)
        repeats_by_name[name] = repeats_by_name.get(name, 0) + (position in repeated)
    rows = tuple(
        _row(name, by_name[name], repeats_by_name[name])
        for name in sorted(by_name, key=_scenario_order)
    )
    return EffectivenessReport(by_scenario=rows, overall=_row(OVERALL, incidents, len(repeated)))


def effectiveness(
    session: Session,
    *,
    since: datetime | None = None,
    scenarios: Sequence[str] = (),
) -> EffectivenessReport:
    """The report over the incidents opened at or after `since` (all when None) whose scenario
    is one of `scenarios` (all when empty; unclassified incidents are then left out, since they
    have no letter to select).

    Repeats are counted among the selected incidents only: the first incident after `since` is
    never a repeat, even if its target had an incident an hour before. That keeps a window's
    figures a function of the window, at the price of a slight undercount at its start.
    """
    incidents = list_incidents(session, scenarios=scenarios, since=since, limit=None)
    return figures(incidents)
