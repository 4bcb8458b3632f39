"""Real Celery worker processes that follow the `alphaswarm-worker` pods of a sandbox cluster.

The sandbox's pods are only records; for scenario C the workers must really consume the queue,
so that `kubectl scale deployment/alphaswarm-worker --replicas=8` really drains a backlog faster.
The pool keeps one worker OS process (prefork, concurrency 1, hostname `celery@<pod>`) per ready
pod, as a kubelet keeps one container per pod: pods that become ready get a process, pods that
go away or stop being ready lose theirs (SIGTERM, so the current task finishes, then SIGKILL
after a grace period), and a process that dies is started again on the next sync.

`attach` wires the pool into a cluster: `celery ... inspect` exec'd in a pod asks the real
workers, `redis-cli llen` in the Redis pod reads the real queue, and the `queue-backlog` incident
feeds the real queue with a steady producer. `start` adds a thread that syncs every `interval`
seconds; `stop` ends every process (and producer) it started.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sandbox import celery_app
from sandbox.celery_backlog import SteadyBacklog
from sandbox.celery_exec import celery_exec_handler, redis_llen_handler
from sandbox.cluster import SandboxCluster
from sandbox.processes import die_with_parent, kill_group, signal_group, tagged_env
from sandbox.resources import POD
from sandbox.shapes import is_ready, is_terminating
from sandbox.store import Store

log = logging.getLogger(__name__)

ROLE = "celery-worker"


@dataclass
class _Worker:
    pod: str
    uid: str
    proc: subprocess.Popen[bytes]
    stopping_since: float | None = None


class WorkerPool:
    def __init__(
        self,
        broker_url: str,
        *,
        namespace: str = "alphaswarm",
        deployment: str = "alphaswarm-worker",
        queues: Sequence[str] = (celery_app.QUEUE,),
        log_dir: Path | None = None,
        grace_seconds: float = 5.0,
    ) -> None:
        self.broker_url = broker_url
        self.namespace, self.deployment = namespace, deployment
        self.queues = tuple(queues)
        self.log_dir = log_dir
        self.grace_seconds = grace_seconds
        self._running: dict[str, _Worker] = {}  # by pod name
        self._stopping: list[_Worker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._cluster: SandboxCluster | None = None
        self.backlog = SteadyBacklog(broker_url)

    # -- wiring ----------------------------------------------------------------------------------
    def attach(self, cluster: SandboxCluster) -> None:
        """Answer `celery inspect` and `redis-cli llen` from the real workers and broker, and
        let `queue-backlog` feed the real queue."""
        self._cluster = cluster
        for handler in (celery_exec_handler, redis_llen_handler):
            cluster.runtime.add_exec_handler(
                handler(cluster, self.broker_url, lambda: not self._closed), first=True
            )
        cluster.queue_backlog_hook = self.backlog

    def start(self, cluster: SandboxCluster, interval: float = 0.2) -> WorkerPool:
        """Attach to `cluster` and keep the processes in step with its pods on a thread."""
        self.attach(cluster)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(cluster.store, interval), name="sandbox-workers", daemon=True
        )
        self._thread.start()
        return self

    def _run(self, store: Store, interval: float) -> None:
        # Workers are forked from this thread only: they die with it (see die_with_parent).
        while True:
            try:
                self.sync(store)
            except Exception:  # a failed spawn must not stop the pool from following the pods
                log.exception("sandbox worker pool: sync failed")
            if self._stop.wait(interval):
                return

    # -- reconciliation --------------------------------------------------------------------------
    def sync(self, store: Store) -> None:
        """One reconcile step: start, stop and reap processes to match the ready pods."""
        with self._lock:
            if self._closed:
                return
            wanted = self._ready_pods(store)
            for name, worker in list(self._running.items()):
                if worker.proc.poll() is not None:
                    log.warning("worker for pod %s exited with %s", name, worker.proc.returncode)
                    del self._running[name]
                    self._stopping.append(worker)  # reap the group, prefork children included
                elif wanted.get(name) != worker.uid:
                    del self._running[name]
                    self._terminate(worker)
            for name, uid in wanted.items():
                if name not in self._running:
                    self._running[name] = _Worker(name, uid, self._spawn(name))
            self._reap(force=False)

    def _ready_pods(self, store: Store) -> dict[str, str]:
        """Ready pods, less those crash-looping: a container without a readiness probe is Ready
        for the moment it runs between two crashes, but its process dies at once (and would find
        the sandbox's real broker up even while the `redis-down` incident says it is not)."""
        pods, _ = store.list(POD, self.namespace, labels=f"app={self.deployment}")
        behaviour = self._cluster.behaviour if self._cluster is not None else None
        return {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in pods
            if is_ready(p)
            and not is_terminating(p)
            and (behaviour is None or not behaviour.of(p).crash_looping)
        }

    def _spawn(self, pod: str) -> subprocess.Popen[bytes]:
        output: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{pod}.log").open("ab")
        try:
            return subprocess.Popen(
                self.command(pod),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env=tagged_env(ROLE, {celery_app.BROKER_ENV: self.broker_url}),
            )
        finally:
            if not isinstance(output, int):
                output.close()

    def command(self, pod: str) -> list[str]:
        """The worker command line for `pod` (the broker comes from the environment)."""
        return [
            sys.executable, "-m", "celery",
            "-A", "sandbox.celery_app",
            "worker",
            "--pool", "prefork",
            "--concurrency", "1",
            "-Q", ",".join(self.queues),
            "-n", hostname(pod),
            "--loglevel", "INFO",
            # Nothing in the sandbox needs worker-to-worker chatter; it only slows start-up.
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip

    def _terminate(self, worker: _Worker) -> None:
        """Warm shutdown: the worker finishes its current task and gives back what it reserved."""
        signal_group(worker.proc, signal.SIGTERM)
        worker.stopping_since = time.monotonic()
        self._stopping.append(worker)

    def _reap(self, *, force: bool) -> None:
        now = time.monotonic()
        left = []
        for worker in self._stopping:
            exited = worker.proc.poll() is not None
            overdue = now - (worker.stopping_since or now) > self.grace_seconds
            if exited or overdue or force:
                kill_group(worker.proc)  # the leader may be gone while its children are not
            else:
                left.append(worker)
        self._stopping = left

    # -- inspection and shutdown -----------------------------------------------------------------
    def hostnames(self) -> list[str]:
        """`celery@<pod>` for every worker process currently running, sorted."""
        with self._lock:
            return sorted(hostname(name) for name in self._running)

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {name: w.proc.pid for name, w in self._running.items()}

    def stop(self) -> None:
        """Stop the backlog producer and syncing, then SIGTERM every worker, wait out the grace
        period, SIGKILL the rest."""
        self.backlog.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            self._closed = True
            for worker in self._running.values():
                self._terminate(worker)
            self._running.clear()
            deadline = time.monotonic() + self.grace_seconds
            for worker in self._stopping:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._reap(force=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def hostname(pod: str) -> str:
    return f"celery@{pod}"
