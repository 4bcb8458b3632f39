"""Retry policy shared by every read task: retry what an adapter calls transient, nothing else.

Adapters never retry; this is the one layer that does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from tasks.adapters.errors import TransientError

P = ParamSpec("P")
R = TypeVar("R")

# A probe is many reads retried as one task: at 10% of requests failing, a 12-read probe
# (runbook E) fails 72% of its attempts, so three retries left it failing one run in four. Twenty
# leave about 0.1% (0.72**21), and an API that stays down still fails the task in under 20 s.
RETRY_DELAYS = [0.1, 0.2, 0.5, *[1.0] * 17]


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry_condition_fn: a permanent error (403, 422, a guard) fails at once."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


def _retried_on_transient(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        decorator: Callable[[Callable[P, R]], Task[P, R]] = task(
            name=name,
            cache_policy=NO_CACHE,
            retries=len(RETRY_DELAYS),
            retry_delay_seconds=RETRY_DELAYS,
            retry_condition_fn=retry_if_transient,
        )
        return decorator(fn)

    return decorate


def probe_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A read-only task: never cached (the cluster moves), retried on transient errors."""
    return _retried_on_transient(name)


def mutation_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A change: never cached (a cached "applied" must not stand in for a new intent), retried
    on transient errors only. Retries are safe because every verb goes through `tasks.changes.gate`,
    which keys the change by the task run id and checks "already done" before each attempt."""
    return _retried_on_transient(name)


class NotYetHealthy(Exception):
    """A verify's answer "not yet": the task's retries poll until it passes or they run out."""


VERIFY_ATTEMPTS = 60
VERIFY_DELAY_SECONDS = 0.5


def retry_until_healthy(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a verify that said "not yet" or hit a transient error; fail at once otherwise."""
    try:
        state.result()
    except (NotYetHealthy, TransientError):
        return True
    except Exception:
        return False
    return False


def verify_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A convergence check: raises NotYetHealthy until healthy, and task retries do the polling
    (a flow widens the budget with `.with_options(retries=N)`)."""

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        decorator: Callable[[Callable[P, R]], Task[P, R]] = task(
            name=name,
            cache_policy=NO_CACHE,
            retries=VERIFY_ATTEMPTS,
            retry_delay_seconds=VERIFY_DELAY_SECONDS,
            retry_condition_fn=retry_until_healthy,
        )
        return decorator(fn)

    return decorate


def spread_polls(seconds: float, *, shortest: float, longest: float) -> tuple[int, float]:
    """Retries and delay for a verify that must watch `seconds`: about ten polls, never closer
    than `shortest` nor further apart than `longest`, plus two to cover the task's own time."""
    delay = min(longest, max(shortest, seconds / 10))
    return int(seconds / delay) + 2, delay
