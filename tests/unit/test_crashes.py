"""Crash-looping over a window, as KubePodCrashLooping judges it, and what "recovered" means."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.adapters.cluster import ContainerState, ContainerStatus, Pod, Termination
from tasks.diagnoses.crashes import crashed_since, is_crash_looping
from tests.unit.factories import NOW, crashing_pod, pod


def between_crashes(died_ago: float, running_for: float, last_run: float = 5.0) -> Pod:
    """Restarted after an error `died_ago` seconds ago, running for `running_for` seconds."""
    died = NOW - timedelta(seconds=died_ago)
    return pod(
        restarts=4,
        last_termination=Termination(
            exit_code=1,
            reason="Error",
            started_at=died - timedelta(seconds=last_run),
            finished_at=died,
        ),
        container_statuses=(
            ContainerStatus(
                name="app",
                image="core",
                ready=True,
                restart_count=4,
                state=ContainerState(
                    state="running", started_at=NOW - timedelta(seconds=running_for)
                ),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("candidate", "looping"),
    [
        (crashing_pod(), True),  # in back-off now
        (pod(), False),
        (crashing_pod(deleting=True), False),
        # Running between two crashes: looping, though kubectl says Running and Ready.
        (between_crashes(died_ago=12, running_for=10), True),
        # Running since a crash 6 minutes ago, far longer than its runs lasted: recovered.
        (between_crashes(died_ago=360, running_for=355), False),
        # The last crash is outside the window.
        (between_crashes(died_ago=1200, running_for=30), False),
    ],
)
def test_is_crash_looping(candidate: Pod, looping: bool) -> None:
    assert is_crash_looping(candidate, NOW) is looping


def test_crashed_since_counts_only_after_the_fix() -> None:
    fixed = NOW - timedelta(seconds=60)
    assert not crashed_since(between_crashes(died_ago=120, running_for=100), fixed)
    assert crashed_since(between_crashes(died_ago=30, running_for=20), fixed)
    assert crashed_since(crashing_pod(), fixed)
