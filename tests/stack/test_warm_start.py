"""Warm starts keep every served run in a process of its own (deployments/warm_start.py).

On the running stack, as `remediate up` starts it (`remediate.stack.start`): a real Prefect
server and `python -m deployments.serve`, whose runs are forked from a warm forkserver. The
cluster is a sandbox in this process, so a test can hold a run on its first read (a latency
fault) for as long as it needs the run alive. A run's process is found by the name warm starts
give it (`run-<id>`, in /proc/<pid>/comm); the tests check it against the serve process, and
cancel and kill it through Prefect and the OS.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployments.warm_start import process_name
from remediate.stack import Stack
from sandbox.flow_env import flow_env
from sandbox.journal import Fault
from sandbox.server import SandboxServer
from tests.stack.up import api_call, processes_with, stack_on

TRIAGE = "triage/triage"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
RUN_SECONDS = 180.0
# Long enough to outlast the test; the run is cancelled or killed well before.
HOLD = Fault(path=r"^/api/v1/", methods=frozenset({"GET"}), latency=600.0)

# `remediate up` alone takes minutes on a loaded machine; the group keeps the module on one xdist
# worker, so its stack (a module fixture) starts once, not once per worker.
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("warm_start")]
# The module's runner polls this seldom, so a run it starts sooner was started by the wake-up on
# Prefect's `prefect.flow-run.Scheduled` event (deployments/serve.py), not by the poll.
POLL_SECONDS = 30.0


@dataclass
class Served:
    stack: Stack
    sandbox: SandboxServer

    @property
    def serve_pid(self) -> int:
        (serve,) = [c for c in self.stack.children if c.name == "served-deployments"]
        assert serve.running and serve.process is not None, serve.tail()
        return serve.process.pid

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return api_call(self.stack.api_url, method, path, **kwargs)

    def start_triage(self) -> str:
        deployment = self.call("GET", f"/deployments/name/{TRIAGE}")
        run = self.call(
            "POST",
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"dry_run": True}},
        )
        return str(run["id"])

    def state(self, flow_run_id: str) -> str:
        return str(self.call("GET", f"/flow_runs/{flow_run_id}")["state_type"])

    def set_state(self, flow_run_id: str, state: str) -> None:
        body = {"state": {"type": state, "name": state.title()}, "force": True}
        self.call("POST", f"/flow_runs/{flow_run_id}/set_state", json=body)


def process_of(flow_run_id: str) -> int | None:
    """The pid of the run's process while it runs."""
    name = process_name(flow_run_id)
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == name:
                return int(proc.name)
        except OSError:
            continue
    return None


def wait_for(what: str, check: Callable[[], Any], timeout: float = RUN_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.05)
    return found


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped counts: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # FileNotFoundError, or ProcessLookupError while it is being reaped
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("warm-start")
    home = f"PREFECT_HOME={state / 'prefect'}".encode()
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith(("PREFECT_", "REMEDIATE_")):
                env.delenv(key)
        env.setenv("REMEDIATE_STORE__URL", f"sqlite:///{state / 'incidents.db'}")
        env.setenv("REMEDIATE_INCIDENTS__REPORTS_DIR", str(state / "incidents"))
        env.setenv("REMEDIATE_SERVING__POLL_SECONDS", str(POLL_SECONDS))
        with ExitStack() as exits:
            sandbox = exits.enter_context(SandboxServer(tick_seconds=0.05))
            kubeconfig = sandbox.write_kubeconfig(state / "kubeconfig.yaml")
            for key, value in flow_env(sandbox.url, sandbox.cluster, kubeconfig).items():
                env.setenv(key, value)
            stack = exits.enter_context(stack_on(state, kubeconfig))
            served = Served(stack, sandbox)
            warm_up(served)
            yield served
        # Stopping serve's process group stopped the forkserver and every run with it.
        wait_for("no process of the stack left", lambda: not processes_with(home), 30)


def warm_up(served: Served) -> None:
    """Until the forkserver has imported everything (a minute on a loaded machine), runs start
    cold, as Prefect starts them: wait for a run that starts warm."""
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        run = served.start_triage()
        while (state := served.state(run)) not in FINAL and process_of(run) is None:
            time.sleep(0.05)
        wait_for("finished run", lambda: served.state(run) in FINAL)  # noqa: B023
        if state not in FINAL:  # its process was found by its warm name
            return
    pytest.fail(f"no run started warm within {RUN_SECONDS:.0f} s")


def completed_run_process(served: Served) -> tuple[int, int]:
    """Start a triage dry run and follow it to the end: (its pid, the process it forked from)."""
    run = served.start_triage()
    pid = wait_for("the run's process", lambda: process_of(run))
    forked_from = parent_of(pid)
    assert wait_for("completed run", lambda: served.state(run) == "COMPLETED" or None)
    wait_for("the run's process to end", lambda: gone(pid), 30)
    return pid, forked_from


def test_each_served_run_has_a_process_of_its_own_forked_warm(served: Served) -> None:
    serve = served.serve_pid
    (first, warm), (second, other_warm) = (completed_run_process(served) for _ in range(2))
    assert len({first, second, serve}) == 3  # neither ran in serve, nor both in one process
    assert warm == other_warm != serve
    assert parent_of(warm) == serve  # the warm forkserver is serve's child, and stays up
    assert "multiprocessing.forkserver" in command_of(warm)


def test_a_new_run_is_started_at_once_not_at_the_next_poll(served: Served) -> None:
    """Prefect's server says a run was scheduled (an event on its stream): serve asks for its
    runs then, so each run leaves Scheduled well before the runner's poll would have seen it."""
    waits = []
    for _ in range(3):
        run = served.start_triage()
        created = time.monotonic()
        wait_for("the run leaving Scheduled", lambda: served.state(run) != "SCHEDULED" or None)  # noqa: B023
        waits.append(time.monotonic() - created)
        wait_for("finished run", lambda: served.state(run) in FINAL)  # noqa: B023
    assert max(waits) < POLL_SECONDS / 6, waits


@contextmanager
def held_running_run(served: Served) -> Iterator[tuple[str, int]]:
    """A triage run RUNNING in its process, held at its first cluster request (HOLD): its id
    and pid. The hold is lifted on the way out."""
    served.sandbox.cluster.faults.add(HOLD)
    try:
        run = served.start_triage()
        pid = wait_for("the run's process", lambda: process_of(run))
        wait_for("running run", lambda: served.state(run) == "RUNNING" or None)
        yield run, pid
    finally:
        served.sandbox.cluster.faults.clear()


def test_cancelling_a_run_from_prefect_ends_its_process(served: Served) -> None:
    with held_running_run(served) as (run, pid):
        assert not gone(pid)

        served.set_state(run, "CANCELLING")

        wait_for("cancelled run", lambda: served.state(run) == "CANCELLED" or None, 60)
        wait_for("the run's process to end", lambda: gone(pid), 30)
    assert served.serve_pid


def test_a_run_that_dies_is_crashed_and_serve_serves_on(served: Served) -> None:
    with held_running_run(served) as (run, pid):
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
        wait_for("crashed run", lambda: served.state(run) == "CRASHED" or None, 60)

    after = served.start_triage()
    after_pid = wait_for("the next run's process", lambda: process_of(after))
    assert wait_for("completed run", lambda: served.state(after) == "COMPLETED" or None)
    assert after_pid not in (pid, served.serve_pid)
