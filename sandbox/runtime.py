"""What a kubelet would know about each pod and the API server does not store: container logs
(current and previous), resource usage for metrics.k8s.io, and the outcome of commands run with
exec. Keyed by pod uid, so a recreated pod with the same name starts with a clean slate.

The topology seeds it, controllers update it as pods come and go, and incidents (next issue)
rewrite it; the API layer only reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


# An exec handler gets (namespace, pod name, container, argv) and answers, or returns None to
# let the next handler try.
ExecHandler = Callable[[str, str, str, list[str]], ExecResult | None]


@dataclass
class ContainerRuntime:
    log: list[str] = field(default_factory=list)
    previous_log: list[str] | None = None  # None: no previous terminated container
    cpu: str = "5m"  # metrics.k8s.io quantities are strings
    memory: str = "64Mi"


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._containers: dict[tuple[str, str], ContainerRuntime] = {}  # (pod uid, container)
        self._exec_handlers: list[ExecHandler] = []

    def container(self, pod_uid: str, container: str) -> ContainerRuntime:
        with self._lock:
            return self._containers.setdefault((pod_uid, container), ContainerRuntime())

    def forget(self, pod_uid: str) -> None:
        with self._lock:
            for key in [k for k in self._containers if k[0] == pod_uid]:
                del self._containers[key]

    def append_log(self, pod_uid: str, container: str, *lines: str) -> None:
        with self._lock:
            self.container(pod_uid, container).log.extend(lines)

    def restart_container(self, pod_uid: str, container: str, *new_lines: str) -> None:
        """The current log becomes the previous one, as when the kubelet restarts a container."""
        with self._lock:
            c = self.container(pod_uid, container)
            c.previous_log, c.log = c.log, list(new_lines)

    def retire_log(self, pod_uid: str, container: str) -> None:
        """The dead container became lastState: its log is what `logs --previous` shows, and
        still what plain `logs` shows until a new container starts (as the kubelet serves it)."""
        with self._lock:
            c = self.container(pod_uid, container)
            c.previous_log = list(c.log)

    def new_log(self, pod_uid: str, container: str, *lines: str) -> None:
        """A new container started in place of the retired one: its own log."""
        with self._lock:
            self.container(pod_uid, container).log = list(lines)

    def logs(self, pod_uid: str, container: str, *, previous: bool) -> list[str] | None:
        """Log lines, or None when asked for a previous container that never terminated."""
        with self._lock:
            c = self.container(pod_uid, container)
            return (
                list(c.previous_log)
                if previous and c.previous_log is not None
                else (None if previous else list(c.log))
            )

    def usage(self, pod_uid: str, container: str) -> tuple[str, str]:
        with self._lock:
            c = self.container(pod_uid, container)
            return c.cpu, c.memory

    def set_usage(self, pod_uid: str, container: str, *, cpu: str, memory: str) -> None:
        with self._lock:
            c = self.container(pod_uid, container)
            c.cpu, c.memory = cpu, memory

    def add_exec_handler(self, handler: ExecHandler, *, first: bool = False) -> None:
        with self._lock:
            if first:
                self._exec_handlers.insert(0, handler)
            else:
                self._exec_handlers.append(handler)

    def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> ExecResult:
        with self._lock:
            handlers = list(self._exec_handlers)
        for handler in handlers:
            result = handler(namespace, pod, container, argv)
            if result is not None:
                return result
        return executable_not_found(argv[0] if argv else "")


# What `kubectl exec` reports when the binary is not in the image: runc's error, as the container
# runtime relays it, and the exit status the runtime gives the failed exec (126, "cannot
# execute"; 127 is a shell's "not found", which an exec without a shell never produces).
EXEC_NOT_FOUND_EXIT_CODE = 126


def executable_not_found(name: str) -> ExecResult:
    return ExecResult(
        stderr="OCI runtime exec failed: exec failed: unable to start container process: exec: "
        f'"{name}": executable file not found in $PATH: unknown\n',
        exit_code=EXEC_NOT_FOUND_EXIT_CODE,
    )
