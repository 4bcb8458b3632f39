"""The running stack the stack tests share: `remediate up` (a Prefect server with its UI, the
served deployments, the intake and the sandbox with its sample incident; without the monitoring
loop, whose alerts would join the incidents these tests stage by hand: tests/monitoring/ runs
it), started once on free
ports with its state in a temporary folder, stopped with nothing left running as soon as the
worker leaves this package: a session fixture would idle on after its tests, its Prefect
server's services taking CPU from every test that runs later.

The tests get it once its sample incident has ended. A test's own triage run on the same
target while the sample is still open would be the same incident, and the two merge (as they
should on a real cluster): the sample's incident would then name that run, not its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.engine import dispose_all
from tests.stack.storm import Processes, processes_in
from tests.stack.up import RunningStack, leftovers, remediate_up


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state = tmp_path_factory.mktemp("stack")
    with remediate_up(state, "--no-monitoring") as running:
        running.wait_for_line("sample: incident ", 240, containing=" report: ")
        yield running
    dispose_all()
    assert leftovers(state) == []


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """The real processes of one storm test (tests/stack/storm.py)."""
    with processes_in(tmp_path) as running:
        yield running
