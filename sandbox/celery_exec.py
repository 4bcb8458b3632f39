"""`celery ... inspect` exec'd in a sandbox pod, answered by the real Celery CLI, and `redis-cli
llen QUEUE` exec'd in the Redis pod, answered by the real broker.

With a worker pool attached, the runbook's `kubectl exec deploy/alphaswarm-worker -- celery -A
alphaswarm.tasks.celery_app inspect active` must show what the real workers are doing, in the
real CLI's words; so the handler runs that CLI against the pool's broker, with the app name
mapped to the sandbox's stand-in. While the sandbox's Redis pod is down (the `redis-down`
incident), or once the pool is stopped, it declines and the canned answers in `sandbox.execs`
speak instead.

With real workers the queue that matters is the broker's, so the runbook's fallback measure
(`kubectl exec redis-master-0 -- redis-cli llen celery`) must read the same list the flows read
through the broker: both paths agree. Other redis-cli commands stay simulated.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import redis

from sandbox import celery_app
from sandbox.cluster import SandboxCluster
from sandbox.processes import tagged_env
from sandbox.redis_cli import auth_refused, command_of, has_redis_cli, redis_serving
from sandbox.resources import POD
from sandbox.runtime import ExecHandler, ExecResult

# Read-only subcommands; anything else falls through to the canned handlers.
READ_ONLY = frozenset({"inspect", "status", "report"})
CLI_TIMEOUT_SECONDS = 30.0


def celery_exec_handler(
    cluster: SandboxCluster, broker_url: str, attached: Callable[[], bool]
) -> ExecHandler:
    def answer(namespace: str, pod_name: str, container: str, argv: list[str]) -> ExecResult | None:
        if argv[:1] != ["celery"] or not READ_ONLY.intersection(argv) or not attached():
            return None
        if not redis_serving(cluster, namespace):
            return None
        return run_cli(broker_url, argv[1:])

    return answer


def redis_llen_handler(
    cluster: SandboxCluster, broker_url: str, attached: Callable[[], bool]
) -> ExecHandler:
    def answer(namespace: str, pod_name: str, container: str, argv: list[str]) -> ExecResult | None:
        command = command_of(argv)
        if command is None or len(command) != 2 or command[0] != "llen" or not attached():
            return None
        pod = cluster.store.get(POD, namespace, pod_name)
        if pod is None or not has_redis_cli(pod) or not redis_serving(cluster, namespace):
            return None
        if auth_refused(pod, argv) is not None:  # the canned handler answers the refusal
            return None
        try:
            with redis.Redis.from_url(broker_url, socket_timeout=2) as broker:
                depth = int(broker.llen(command[1]))
        except redis.RedisError:
            return None
        return ExecResult(stdout=f"{depth}\n")

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
