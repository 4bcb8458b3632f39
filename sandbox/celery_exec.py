"""`celery ... inspect` exec'd in a sandbox pod, answered by the real Celery CLI.

With a worker pool attached, the runbook's `kubectl exec deploy/alphaswarm-worker -- celery -A
alphaswarm.tasks.celery_app inspect active` must show what the real workers are doing, in the
real CLI's words; so the handler runs that CLI against the pool's broker, with the app name
mapped to the sandbox's stand-in. While the sandbox's Redis pod is down (the `redis-down`
incident), or once the pool is stopped, it declines and the canned answers in `sandbox.execs`
speak instead.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from sandbox import celery_app
from sandbox.cluster import SandboxCluster
from sandbox.processes import tagged_env
from sandbox.resources import POD
from sandbox.runtime import ExecHandler, ExecResult
from sandbox.shapes import is_ready

# Read-only subcommands; anything else falls through to the canned handlers.
READ_ONLY = frozenset({"inspect", "status", "report"})
CLI_TIMEOUT_SECONDS = 30.0


def celery_exec_handler(
    cluster: SandboxCluster, broker_url: str, attached: Callable[[], bool]
) -> ExecHandler:
    def answer(namespace: str, pod_name: str, container: str, argv: list[str]) -> ExecResult | None:
        if argv[:1] != ["celery"] or not READ_ONLY.intersection(argv) or not attached():
            return None
        if not _redis_ready(cluster, namespace):
            return None
        return run_cli(broker_url, argv[1:])

    return answer


def run_cli(broker_url: str, args: list[str]) -> ExecResult:
    """Run `celery <args>` with the AlphaSwarm app name swapped for the sandbox's app."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "celery", *_sandbox_app(args)],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
            env=tagged_env("celery-cli", {celery_app.BROKER_ENV: broker_url}),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ExecResult(stderr="Error: celery did not answer in time\n", exit_code=1)
    return ExecResult(stdout=done.stdout, stderr=done.stderr, exit_code=done.returncode)


def _sandbox_app(args: list[str]) -> list[str]:
    if not any(a in ("-A", "--app") or a.startswith("--app=") for a in args):
        return ["-A", "sandbox.celery_app", *args]
    out, swap_next = [], False
    for arg in args:
        if swap_next:
            out.append("sandbox.celery_app")
            swap_next = False
        elif arg in ("-A", "--app"):
            out.append(arg)
            swap_next = True
        elif arg.startswith("--app="):
            out.append("--app=sandbox.celery_app")
        else:
            out.append(arg)
    return out


def _redis_ready(cluster: SandboxCluster, namespace: str) -> bool:
    pods, _ = cluster.store.list(POD, namespace, labels="app=redis")
    return any(is_ready(p) for p in pods)
