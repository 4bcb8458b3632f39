"""How the CLI runs flows in-process: Prefect's local server on SQLite under var/prefect, without
the per-flow heartbeat join that costs up to a second on every sync flow exit (Prefect 3.9).

Prefect reads its settings when it is first imported, so `prefect_environment()` must run before
anything imports prefect (flows and tasks do).
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The server's task-run recorder writes each event as it arrives; this covers one write.
RECORDER_GRACE_SECONDS = 1.0


# A fresh home's temporary server migrates its database first: Prefect's 20 s default is too
# short on a small machine, and the first run must work.
EPHEMERAL_STARTUP_SECONDS = "180"
# Where `remediate up` says which Prefect API it serves, while it runs.
STACK_API_FILE = Path("var/stack/api-url")


def prefect_environment() -> None:
    """Default PREFECT_HOME to the project's var/prefect (an operator's setting wins), and run
    flows on the API of a running `remediate up` when there is one, so every run is in its UI's
    history and nothing waits for a temporary server to start."""
    home = Path(os.environ.setdefault("PREFECT_HOME", str(Path("var/prefect").resolve())))
    home.mkdir(parents=True, exist_ok=True)  # Prefect creates only the last path component
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_SECONDS
    )
    if "PREFECT_API_URL" not in os.environ:
        running = running_stack_api()
        if running is not None:
            os.environ["PREFECT_API_URL"] = running


def running_stack_api(marker: Path = STACK_API_FILE) -> str | None:
    """The API of the `remediate up` running from this directory, if it answers."""
    try:
        url = marker.read_text().strip()
        with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
            return url if answer.status == 200 else None
    except (OSError, ValueError):
        return None


@contextmanager
def quiet_prefect() -> Iterator[None]:
    prefect_environment()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        try:
            yield
        finally:
            _let_the_local_server_record()


def _let_the_local_server_record() -> None:
    """Send the run's last events and give the temporary server a moment to write them.

    Otherwise the server is stopped mid-write at exit: the run history loses its last task
    runs and the operator sees a CancelledError traceback from Prefect's recorder.
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=5)
    time.sleep(RECORDER_GRACE_SECONDS)
