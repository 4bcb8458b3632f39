"""Steps of one flow run started at once (`tasks.run_context.Concurrently`), and the triage probe
step's retries per probe (`tasks.probes.triage.retried`), through the real Prefect engine."""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, task
from prefect.context import FlowRunContext, TaskRunContext

from tasks.adapters.errors import PermanentError, TransientError
from tasks.probes.triage import retried
from tasks.run_context import Concurrently, current_flow_run


@pytest.fixture(autouse=True)
def harness(prefect_harness: None) -> None:
    """Every test here runs flows on the session's Prefect harness."""


def test_steps_run_at_once_as_task_runs_of_the_callers_flow_run() -> None:
    both_started = threading.Barrier(2, timeout=10)

    @task(name="step")
    def step(name: str) -> tuple[str, str | None, str]:
        both_started.wait()  # only passes when the two steps run at the same time
        context = TaskRunContext.get()
        assert context is not None
        return name, current_flow_run()[0], str(context.task_run.flow_run_id)

    @flow(name="at-once")
    def at_once_flow() -> tuple[str | None, list[tuple[str, str | None, str]]]:
        with Concurrently(workers=2) as at_once:
            first = at_once(lambda: step("first"))
            second = at_once(lambda: step("second"))
        return current_flow_run()[0], [first(), second()]

    run_id, results = at_once_flow()
    assert [name for name, _, _ in results] == ["first", "second"]
    assert {seen for _, seen, _ in results} == {run_id}  # the flow run's context in each thread
    assert {task_flow for _, _, task_flow in results} == {run_id}


def test_a_steps_exception_is_raised_where_its_result_is_read() -> None:
    @flow(name="at-once-fails")
    def failing() -> str:
        with Concurrently(workers=2) as at_once:
            ok = at_once(lambda: "fine")
            broken = at_once(lambda: _raise(PermanentError("403 from the API server")))
        assert ok() == "fine"
        return broken()

    with pytest.raises(PermanentError, match="403"):
        failing()


def test_outside_a_flow_run_steps_run_one_after_another_in_the_callers_thread() -> None:
    assert FlowRunContext.get() is None
    threads = []
    with Concurrently(workers=4) as at_once:
        for _ in range(3):
            at_once(lambda: threads.append(threading.get_ident()))
    assert threads == [threading.get_ident()] * 3


def test_a_probe_is_retried_alone_on_a_transient_error_and_not_on_a_permanent_one() -> None:
    calls: list[str] = []

    def flaky(name: str) -> str:
        calls.append(name)
        if len(calls) < 3:
            raise TransientError("503 from the API server")
        return name

    began = time.monotonic()
    assert retried(flaky, "pods") == "pods"
    assert calls == ["pods"] * 3
    assert time.monotonic() - began >= 0.1 + 0.2  # the task's own retry delays

    def forbidden() -> None:
        calls.append("forbidden")
        raise PermanentError("403")

    calls.clear()
    with pytest.raises(PermanentError):
        retried(forbidden)
    assert calls == ["forbidden"]

    def down() -> None:
        calls.append("down")
        raise TransientError("connection refused")

    calls.clear()
    with pytest.raises(TransientError):
        retried(down, retries=1)
    assert calls == ["down", "down"]


def _raise(exc: Exception) -> str:
    raise exc
