"""A throwaway real `redis-server` on a free loopback port, for the Celery broker.

Scenario C must drain a real queue, so tests and `remediate sandbox up` start their own Redis
instead of relying on a system service: no persistence (`--save ""`, no AOF), its working
directory in a temporary folder, stopped (and the folder removed) on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.processes import die_with_parent, remember, stop_group, tagged_env

ROLE = "redis-server"


class RedisNotInstalledError(RuntimeError):
    """`redis-server` is not on the PATH."""


class RedisServer:
    """Use as a context manager, or call start/stop. `url` is valid once started."""

    def __init__(self, *, executable: str = "redis-server", startup_timeout: float = 10.0) -> None:
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the Redis server is not started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        binary = shutil.which(self.executable)
        if binary is None:
            raise RedisNotInstalledError(
                f"{self.executable} is not installed (on Debian: apt-get install -y redis-server)"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="sandbox-redis-"))
        # A free port can be taken between probing and binding; a second try settles it.
        for attempt in range(3):
            self.port = _free_port()
            args = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._dir),
                "--daemonize", "no",
                "--logfile", str(self._dir / "redis.log"),
            ]  # fmt: skip
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env=tagged_env(ROLE),
            )
            remember(self._proc)
            if self._wait_for_ping():
                return self
            self._stop_process()
            if attempt == 2:
                break
        log = self._log_tail()
        self._remove_dir()
        raise RuntimeError(f"redis-server did not answer PING on a free port:\n{log}")

    def _wait_for_ping(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if _ping(self.port):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._stop_process()
        self._remove_dir()

    def _stop_process(self) -> None:
        if self._proc is not None:
            stop_group(self._proc, grace=5)
            self._proc = None

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        try:
            return "\n".join((self._dir / "redis.log").read_text().splitlines()[-10:])
        except OSError:
            return ""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    """A bare RESP PING, so waiting for start-up needs no client library."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
