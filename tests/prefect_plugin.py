"""The Prefect server the engine tests run their flows against: one per test session (per xdist
worker), started on first use. A plugin, not a conftest fixture: a session fixture that two
conftests import is two fixtures, so two servers, each idling on the machine's two cores.

Also the migrated database the stack tests' own Prefect servers start on (`seed_prefect_home`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness

from remediate.processes import prefect_cli


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


@cache
def _migrated_database() -> Path:
    """A Prefect SQLite database with every migration applied, made once per test process."""
    home = Path(tempfile.mkdtemp(prefix="prefect-migrated-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    subprocess.run(
        [prefect_cli(), "server", "database", "upgrade", "-y"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home / "prefect.db"


def seed_prefect_home(home: Path) -> None:
    """Give a new PREFECT_HOME a copy of the migrated database, so the Prefect server a stack
    test starts there skips the migrations (about 20 s of CPU each, on a machine the other
    worker loads too). A home that has a database keeps it: a restart test's second stack must
    find the first one's state. The first-run path, migrations included, is still what the
    shared stack (`tests/stack/conftest.py`) and `make run` go through."""
    if (home / "prefect.db").exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_database(), home / "prefect.db")
