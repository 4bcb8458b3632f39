"""Child processes the sandbox starts (redis-server, Celery workers), and how to stop and find them.

Every such process is started in its own session (so a signal reaches its whole process group,
prefork children included), asks the kernel for SIGTERM when the thread that started it dies (so
a test run killed by a timeout or SIGKILL does not leave Redis and workers behind), and carries
`OWNER_ENV` in its environment, so a test can prove after the fact that nothing it started is
still alive, even a grandchild that was re-parented to init.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from pathlib import Path

OWNER_ENV = "SANDBOX_PROCESS_OWNER"
ROLE_ENV = "SANDBOX_PROCESS_ROLE"


_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child must not load libraries between fork and exec.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
# Leaders started here, by pid: redis-server rewrites its environ, so a scan cannot find it.
_started: set[int] = set()


def die_with_parent() -> None:
    """`preexec_fn`: SIGTERM this child when the thread that forked it exits (Linux only).

    The kernel ties this to the forking *thread*, so long-lived children must be started from a
    thread that lives as long as they should.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def remember(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Record a leader this process started, for `owned_processes`."""
    _started.add(proc.pid)
    return proc


def tagged_env(role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus the owner/role tags (and `extra`)."""
    env = dict(os.environ)
    env.update(extra or {})
    env[OWNER_ENV] = str(os.getpid())
    env[ROLE_ENV] = role
    return env


def stop_group(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL what is left.

    The group is signalled even when the leader has already exited, so no child survives it.
    """
    signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole group and reap the leader."""
    signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the group `proc` leads (it was started with start_new_session=True)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def owned_processes(owner: int | None = None, role: str | None = None) -> list[int]:
    """Live pids whose environment names `owner` (default: this process) and, if given, `role`;
    without either, also the leaders this process started that hide their environment."""
    owner_tag = f"{OWNER_ENV}={owner or os.getpid()}".encode()
    role_tag = f"{ROLE_ENV}={role}".encode() if role else None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":  # exited; only its parent's wait() is missing
            continue
        tagged = owner_tag in environ and (role_tag is None or role_tag in environ)
        remembered = role is None and owner is None and int(entry.name) in _started
        if tagged or remembered:
            found.append(int(entry.name))
    return found
