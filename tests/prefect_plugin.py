"""The Prefect server the engine tests run their flows against: one per test session (per xdist
worker), started on first use. A plugin, not a conftest fixture: a session fixture that two
conftests import is two fixtures, so two servers, each idling on the machine's two cores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    # The heartbeat thread's join costs up to 1 s per sync flow in Prefect 3.9.
    with (
        temporary_settings(
            {
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED: False,
            }
        ),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield
