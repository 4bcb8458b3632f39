"""Runbook A, B, C decisions: every branch is a row."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.diagnoses.workload import (
    diagnose_hpa_thrash,
    diagnose_pod_crash,
    diagnose_queue_backlog,
    runaway_tasks,
)
from tasks.models.diagnosis import Action, Scenario
from tasks.models.snapshots import CrashingPod, HpaThrashSnapshot, PodCrashSnapshot, QueueSnapshot
from tests.unit.factories import NOW, crashing_pod, deployment, hpa, pdb, pod, rescale

CRASH = CrashingPod(pod=crashing_pod(), previous_log="boot\nKeyError: 'DATABASE_URL'\n")
CRASH_2 = CrashingPod(pod=crashing_pod("alphaswarm-core-def"))
NO_PDB: Any = None


def crash_snapshot(**overrides: Any) -> PodCrashSnapshot:
    fields: dict[str, Any] = {
        "observed_at": NOW,
        "namespace": "alphaswarm",
        "deployment_name": "alphaswarm-core",
        "deployment": deployment(),
        "pods": (CRASH.pod, pod("alphaswarm-core-x"), pod("alphaswarm-core-y")),
        "crashing": (CRASH,),
        "pdb": pdb(),
    }
    return PodCrashSnapshot(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("snapshot", "action", "scenario", "says"),
    [
        (crash_snapshot(), Action.RESTART_DEPLOYMENT, Scenario.POD_CRASH, "rolling restart"),
        (crash_snapshot(crashing=()), Action.NONE, Scenario.POD_CRASH, "no pod"),
        (crash_snapshot(deployment=None), Action.ESCALATE, Scenario.POD_CRASH, "does not exist"),
        (crash_snapshot(crashing=(CRASH, CRASH_2)), Action.REROUTE, Scenario.HPA_THRASH, "2 pods"),
        (
            crash_snapshot(restarts_already_made=2),
            Action.ESCALATE,
            Scenario.POD_CRASH,
            "already restarted 2 times",
        ),
        (
            crash_snapshot(deployment=deployment(paused=True)),
            Action.ESCALATE,
            Scenario.POD_CRASH,
            "paused",
        ),
        (
            crash_snapshot(pdb=pdb(disruptions_allowed=0, current_healthy=1, desired_healthy=2)),
            Action.ESCALATE,
            Scenario.POD_CRASH,
            "PodDisruptionBudget is already violated",
        ),
        # Replacing the crashing pod keeps the healthy count: allowed even at 0 disruptions.
        (
            crash_snapshot(pdb=pdb(disruptions_allowed=0, current_healthy=2, desired_healthy=2)),
            Action.RESTART_DEPLOYMENT,
            Scenario.POD_CRASH,
            "rolling restart",
        ),
        (crash_snapshot(pdb=NO_PDB), Action.RESTART_DEPLOYMENT, Scenario.POD_CRASH, "restart"),
    ],
)
def test_diagnose_pod_crash(
    snapshot: PodCrashSnapshot, action: Action, scenario: Scenario, says: str
) -> None:
    found = diagnose_pod_crash(snapshot)
    assert (found.action, found.scenario) == (action, scenario)
    assert says in found.summary
    if action is Action.RESTART_DEPLOYMENT:
        assert found.needs_action and found.name == "alphaswarm-core"
        assert any("KeyError" in e for e in found.evidence)


FLAPPING = (rescale(6, count=5, minutes_ago=0.5), rescale(3, count=5, minutes_ago=0.2))


def hpa_snapshot(**overrides: Any) -> HpaThrashSnapshot:
    fields: dict[str, Any] = {
        "observed_at": NOW,
        "namespace": "alphaswarm",
        "hpa_name": "alphaswarm-core",
        "hpa": hpa(window=0, rescales=FLAPPING),
        "worker_task_lines": (
            "task backtest[4411aaaa] started",
            "task backtest[4412bbbb] started",
            "task backtest[4411aaaa] finished",
            "task report[4413cccc] FAILED",
        ),
    }
    return HpaThrashSnapshot(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("snapshot", "action", "window"),
    [
        (hpa_snapshot(), Action.WIDEN_HPA_WINDOW, 300),
        (hpa_snapshot(hpa=hpa(window=None, rescales=FLAPPING)), Action.WIDEN_HPA_WINDOW, 300),
        (hpa_snapshot(hpa=hpa(window=300, rescales=FLAPPING)), Action.ESCALATE, None),
        (hpa_snapshot(hpa=hpa(window=600, rescales=FLAPPING)), Action.ESCALATE, None),
        (hpa_snapshot(hpa=None), Action.ESCALATE, None),
        # One size only: scaling up under load is not thrashing.
        (hpa_snapshot(hpa=hpa(rescales=(rescale(6, count=9),))), Action.NONE, None),
        # Alternating, but long ago.
        (
            hpa_snapshot(hpa=hpa(rescales=(rescale(6, 5, 30), rescale(3, 5, 29)))),
            Action.NONE,
            None,
        ),
        # Alternating, but too few rescales.
        (hpa_snapshot(hpa=hpa(rescales=(rescale(6), rescale(3)))), Action.NONE, None),
    ],
)
def test_diagnose_hpa_thrash(
    snapshot: HpaThrashSnapshot, action: Action, window: int | None
) -> None:
    found = diagnose_hpa_thrash(snapshot)
    assert found.action is action and found.scenario is Scenario.HPA_THRASH
    assert found.window_seconds == window


def test_runaway_tasks_are_failed_and_unfinished() -> None:
    lines = hpa_snapshot().worker_task_lines
    assert runaway_tasks(lines) == (
        "task report[4413cccc] FAILED",
        "task backtest[4412bbbb] started",
    )


def queue_snapshot(**overrides: Any) -> QueueSnapshot:
    fields: dict[str, Any] = {
        "observed_at": NOW,
        "namespace": "alphaswarm",
        "deployment_name": "alphaswarm-worker",
        "queue": "celery",
        "depth": 5_000,
        "active_tasks": 4,
        "workers": deployment("alphaswarm-worker", replicas=2, ready_replicas=2),
    }
    return QueueSnapshot(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("snapshot", "action", "replicas"),
    [
        (queue_snapshot(depth=50), Action.NONE, None),
        (queue_snapshot(), Action.SCALE_WORKERS, 8),
        (queue_snapshot(depth=150, alarm=100), Action.SCALE_WORKERS, 8),  # its own alarm
        (queue_snapshot(depth=999, alarm=1000), Action.NONE, None),
        (queue_snapshot(active_tasks=None), Action.SCALE_WORKERS, 8),
        (
            queue_snapshot(workers=deployment("alphaswarm-worker", replicas=8)),
            Action.ESCALATE,
            None,
        ),
        (queue_snapshot(depth=None), Action.ESCALATE, None),
        (queue_snapshot(depth=None, broker_error="ConnectionError"), Action.ESCALATE, None),
        (queue_snapshot(workers=None), Action.ESCALATE, None),
    ],
)
def test_diagnose_queue_backlog(
    snapshot: QueueSnapshot, action: Action, replicas: int | None
) -> None:
    found = diagnose_queue_backlog(snapshot)
    assert found.action is action and found.replicas == replicas
    assert found.scenario is Scenario.QUEUE_BACKLOG
