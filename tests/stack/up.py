"""`remediate up` as the stack tests use it: a child process in its own session, on free ports,
its state (Prefect's home, the store, the reports) under a test folder; the URLs it prints; and
a SIGTERM at the end, after which none of its processes may be left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from remediate.stack import Stack, StackOptions, start
from store.engine import dispose_all
from tasks.settings import Settings
from tests.alertmanager_stand_in import resolving_held_incidents
from tests.prefect_plugin import seed_prefect_home

ROOT = Path(__file__).resolve().parents[2]
REMEDIATE = str(Path(sys.executable).with_name("remediate"))
TOKEN = "stack-test-intake-token"
READY_SECONDS = 150.0


@dataclass
class RunningStack:
    prefect_url: str
    intake_url: str
    kubeconfig: Path
    state: Path
    env: dict[str, str]  # what the stack's processes were started with (store, token)
    lines: list[str] = field(default_factory=list)  # everything `up` printed so far

    @property
    def api_url(self) -> str:
        return f"{self.prefect_url}/api"

    @property
    def logs(self) -> Path:
        return self.state / "stack" / "logs"

    @property
    def token(self) -> str:
        return TOKEN

    def wait_for_line(self, prefix: str, timeout: float, containing: str = "") -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix) and containing in line:
                    return line
            time.sleep(0.2)
        raise AssertionError(f"`remediate up` never printed {prefix!r}:\n" + "\n".join(self.lines))


def _reader(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))


@contextmanager
def remediate_up(state: Path, *args: str) -> Iterator[RunningStack]:
    state.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        REMEDIATE_STORE__URL=f"sqlite:///{state}/incidents.db",
        REMEDIATE_INCIDENTS__REPORTS_DIR=str(state / "reports"),
        REMEDIATE_INTAKE_TOKEN=TOKEN,
        PREFECT_HOME=str(state / "prefect"),
    )
    argv = [REMEDIATE, "up", "--state-dir", str(state), "--prefect-port", "0"]
    process = subprocess.Popen(
        [*argv, "--intake-port", "0", *args],
        env=env,
        cwd=state,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_reader, args=(process, lines), daemon=True)
    reader.start()
    # Without the monitoring loop nothing resolves the hand-made alerts the tests post.
    stand_in = (
        resolving_held_incidents(env["REMEDIATE_STORE__URL"])
        if "--no-monitoring" in args
        else nullcontext()
    )
    try:
        stand_in.__enter__()
        stack = RunningStack("", "", Path(), state, env, lines)
        value = {
            key: stack.wait_for_line(f"{key}: ", READY_SECONDS).split(": ", 1)[1]
            for key in ("prefect-ui", "intake", "kubeconfig")
        }
        stack.prefect_url, stack.intake_url = value["prefect-ui"], value["intake"]
        stack.kubeconfig = Path(value["kubeconfig"])
        yield stack
    finally:
        stand_in.__exit__(None, None, None)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def leftovers(state: Path) -> list[str]:
    """Processes still running with this stack's Prefect home in their environment."""
    return processes_with(f"PREFECT_HOME={state / 'prefect'}".encode())


def processes_with(marker: bytes) -> list[str]:
    """The command lines of other processes whose environment holds `marker` (NAME=value)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def api_call(api_url: str, method: str, path: str, **kwargs: Any) -> Any:
    """The Prefect API's JSON answer. On SQLite the server answers 503 when its database is
    locked (its own services write too): retried, as Prefect's client retries it."""
    for _ in range(20):
        answer = httpx.request(method, f"{api_url}{path}", timeout=30, **kwargs)
        if answer.status_code != 503:
            break
        time.sleep(0.5)
    return answer.raise_for_status().json() if answer.content else None


def flow_runs(api_url: str, **flow_run_filter: Any) -> list[dict[str, Any]]:
    """The flow runs the Prefect API at `api_url` has that match the filter (up to 200)."""
    runs: list[dict[str, Any]] = api_call(
        api_url, "POST", "/flow_runs/filter", json={"flow_runs": flow_run_filter, "limit": 200}
    )
    return runs


@contextmanager
def stack_on(state: Path, kubeconfig: Path) -> Iterator[Stack]:
    """`remediate up`'s parts started from this process (`remediate.stack.start`), on free ports,
    without the sample, on the cluster `kubeconfig` names; every one stopped when the block ends."""
    if "PREFECT_HOME" not in os.environ:  # else `start` uses that home, not the state's
        seed_prefect_home(state / "prefect")
    with ExitStack() as exits:
        options = StackOptions(
            state_dir=state, kubeconfig=kubeconfig, prefect_port=0, intake_port=0, sample=False
        )
        exits.enter_context(resolving_held_incidents(Settings().store.url.get_secret_value()))
        yield start(options, lambda _: None, exits)
    dispose_all()
