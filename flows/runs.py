"""What every deployed flow shares: its run form's conventions, its run's name, its log's story.

Forms. A deployed flow takes flat keyword parameters, one per field of its Params model, so the
Prefect UI's run form shows each field directly. Their descriptions come from the flow's
docstring (its Google-style `Args:` section, which Prefect's parameter schema reads), so the
signature keeps plain defaults and the flow stays an ordinary function to call. A name or a
number that defaults to the deployment's settings is left empty in the form ("", or unset):
`configured` drops those, and the Params model's own default (read from settings) applies.
`dry_run` is True unless the form says otherwise: a run started from the UI or the API plans
and changes nothing.

Names. `named(flow, target)` is a `flow_run_name` callable: `pod-crash: alphaswarm/alphaswarm-core
(dry run)`, read from the run's own parameters (`prefect.runtime.flow_run.parameters`).

Story. `tell*` log one INFO line per step in the current run's log (called from flow bodies,
never from pure functions): the diagnosis, each change as it is planned or applied, each
verification and how it ended.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run

from tasks.changes.models import ChangeRecord
from tasks.models.diagnosis import Diagnosis
from tasks.models.outcome import Outcome


def configured(**values: Any) -> dict[str, Any]:
    """The values the form set: unset (None) and empty ("", [], ()) mean "the deployment's
    settings", so the Params model's own default applies."""
    return {name: value for name, value in values.items() if not _empty(value)}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple) and len(value) == 0)


def run_parameters() -> Mapping[str, Any]:
    """The current run's parameters (validated: models are objects), empty outside a run."""
    found: Mapping[str, Any] = flow_run.parameters
    return found


def run_name(flow: str, subject: str, *, dry_run: bool = False) -> str:
    return f"{flow}: {subject}{' (dry run)' if dry_run else ''}"


def named(flow: str, subject: Callable[[Mapping[str, Any]], str]) -> Callable[[], str]:
    """A `flow_run_name` callable: the flow, what the run is about, and whether it is a plan."""

    def name() -> str:
        parameters = run_parameters()
        return run_name(flow, subject(parameters), dry_run=parameters.get("dry_run") is True)

    name.__name__ = f"{flow.replace('-', '_')}_run_name"
    return name


def tell(message: str, *args: object) -> None:
    get_run_logger().info(message, *args)


def tell_diagnosis(diagnosis: Diagnosis) -> None:
    target = "/".join(part for part in (diagnosis.namespace, diagnosis.name) if part)
    tell(
        "diagnosis: %s%s: %s (%d evidence line(s))",
        diagnosis.action.value,
        f" {target}" if target else "",
        diagnosis.summary,
        len(diagnosis.evidence),
    )


def tell_change(change: ChangeRecord) -> None:
    tell(
        "%s: %s%s", change.status.value, change.summary, f" ({change.note})" if change.note else ""
    )


def tell_outcome(outcome: Outcome) -> Outcome:
    """Each verification, then how the run ended; returns the outcome for `return tell_...`."""
    for check in outcome.verification:
        tell(
            "%s: %s: %s", "verified" if check.passed else "NOT verified", check.check, check.detail
        )
    tell("outcome: %s: %s", outcome.status.value, outcome.message)
    return outcome
