"""Child processes of `remediate up`: started in their own process group with their output in a
log file, waited on over HTTP, and stopped (TERM, then KILL) with everything they started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


class ProcessFailed(RuntimeError):
    """A child exited before it was ready; the message carries the end of its log."""


def prefect_cli() -> str:
    """The `prefect` command of this interpreter's environment (a venv not on PATH), else PATH's."""
    beside = Path(sys.executable).with_name("prefect")
    return str(beside) if beside.exists() else "prefect"


def prefect_server(host: str, port: int) -> list[str]:
    """The command that serves Prefect's API and UI on host:port (remediate/prefect_server.py),
    with this interpreter."""
    return [sys.executable, "-m", "remediate.prefect_server", "--host", host, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stopping it stops its flow runs too
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it holds; fail early, with the log's tail, if the child died."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running:
                raise ProcessFailed(f"{self.name} exited before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.name}: no {what} within {timeout:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # what the group still holds (a flow run)
            os.killpg(self.process.pid, signal.SIGKILL)


def answers(url: str, *, status: int = 200) -> Callable[[], bool]:
    """A readiness check: GET `url` answers with `status`."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == status)
        except urllib.error.HTTPError as exc:
            return exc.code == status
        except OSError:
            return False

    return check
