"""Which incident the current run works for, carried as a Prefect tag (`incident-42`).

Triage runs the scenario flow inside `with tags(incident_tag(id))`, so the scenario's flow run
and every task run in it carry the tag: the Prefect UI filters an incident's runs by it, and the
gate reads it to link each audit row to its incident without threading an id through every
flow's parameters. A deployment run started for the incident (D's scheduled revert) gets the
tag explicitly, and it is read back from the flow run's own tags in that process.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prefect.context import FlowRunContext, TagsContext

PREFIX = "incident-"
T = TypeVar("T")


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


class Concurrently:
    """Independent steps of one flow run started at once: each call runs in a thread that
    carries the caller's Prefect context (the flow run, its tags), so a task called there is a
    task run of the caller's flow run, with its own retries, as Prefect's thread-pool task
    runner runs a submitted task. Calling what `__call__` returned gives the result or raises
    the step's exception; leaving the block waits for every step. Outside a flow run the steps
    run one after another, as written.

        with Concurrently(workers=2) as at_once:
            pods = at_once(lambda: probe_pods(namespace))
            deployment = at_once(lambda: probe_deployment(namespace, name))
        snapshot = Snapshot(pods=pods(), deployment=deployment())
    """

    def __init__(self, workers: int) -> None:
        self._pool: ThreadPoolExecutor | None = None
        if FlowRunContext.get() is not None:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="at-once")

    def __enter__(self) -> Concurrently:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __call__(self, call: Callable[[], T]) -> Callable[[], T]:
        if self._pool is None:
            value = call()
            return lambda: value
        future = self._pool.submit(contextvars.copy_context().run, call)
        return future.result
