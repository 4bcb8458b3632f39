"""Which incident the current run works for, carried as a Prefect tag (`incident-42`).

Triage runs the scenario flow inside `with tags(incident_tag(id))`, so the scenario's flow run
and every task run in it carry the tag: the Prefect UI filters an incident's runs by it, and the
gate reads it to link each audit row to its incident without threading an id through every
flow's parameters. A deployment run started for the incident (D's scheduled revert) gets the
tag explicitly, and it is read back from the flow run's own tags in that process.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect.context import FlowRunContext, TagsContext

PREFIX = "incident-"


def incident_tag(incident_id: int) -> str:
    return f"{PREFIX}{incident_id}"


def incident_from_tags(tags: Iterable[str]) -> int | None:
    """The incident a set of tags names (the newest, if several), else None."""
    found = [
        int(t[len(PREFIX) :]) for t in tags if t.startswith(PREFIX) and t[len(PREFIX) :].isdigit()
    ]
    return max(found) if found else None


def current_tags() -> set[str]:
    tags = set(TagsContext.get().current_tags)
    run = FlowRunContext.get()
    if run is not None and run.flow_run is not None:
        tags |= set(run.flow_run.tags)
    return tags


def current_incident() -> int | None:
    return incident_from_tags(current_tags())


def current_flow_run() -> tuple[str | None, str]:
    """The id and name of the flow run this code runs in (None outside Prefect)."""
    run = FlowRunContext.get()
    if run is None or run.flow_run is None:
        return None, ""
    return str(run.flow_run.id), run.flow_run.name
