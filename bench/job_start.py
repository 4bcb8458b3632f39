"""Time from a flow run being scheduled to its process starting: a Kubernetes work pool (the
run submitted as a Job to the sandbox, whose kubelet starts the pod's process) against a process
work pool (the worker forks the process itself), the same flow, in one run.

Both workers are real `prefect worker start` processes on one Prefect server and poll every
second (`sandbox.prefect_pools.QUERY_SECONDS`); after one warm-up run each (not counted: the
first Job, cold imports), runs alternate between the pools. The process pool is the baseline of
the printed ratio. "Scheduled" is
just before the run is created through the API (it is due at once); "started" is the kernel's
start time of a process (/proc/<pid>/stat). For the Kubernetes pool that is the Job pod's
process (`prefect flow-run execute`, found from the sandbox), and also the flow's engine it
starts; the process worker supervises the run itself and starts the engine directly (the run's
infrastructure_pid), so the engine-to-engine ratio is the like-for-like one. The flow sleeps a
few seconds so its process is still there to be looked at.

Run: `.venv/bin/python bench/job_start.py [runs per pool]` (default 5; a few minutes).
"""

from __future__ import annotations

import base64
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect import flow

from sandbox import jobs as sandbox_jobs
from sandbox.prefect_pools import FINAL, JOB_NAMESPACE, ROOT, PrefectOverSandbox
from sandbox.resources import POD, SECRET
from sandbox.server import SandboxServer

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
K8S_POOL, PROCESS_POOL = "bench-k8s", "bench-process"
JOB = "kubernetes: the Job pod's process"
JOB_ENGINE = "kubernetes: its flow engine"
PROCESS = "process pool: the run's process (engine)"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@flow(name="bench-job-start")
def naps(seconds: float = 3.0) -> None:
    time.sleep(seconds)


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def process_start(pid: int) -> float:
    """When `pid` started, on the wall clock (to the kernel's 10 ms tick)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return _boot_time() + int(fields[19]) / _CLOCK_TICKS


def poll(find: Callable[[], int | None], timeout: float = 300.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := find()) is not None:
            return found
        time.sleep(0.05)
    raise TimeoutError("the run's process never appeared")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as exits:
        sandbox = exits.enter_context(SandboxServer())
        jobs = sandbox_jobs.attach(sandbox.cluster)
        exits.callback(jobs.stop)
        token = base64.b64encode(sandbox.cluster.control_plane.token.encode()).decode()
        sandbox.cluster.store.create(
            SECRET,
            {
                "metadata": {"name": "alphaswarm-remediate", "namespace": JOB_NAMESPACE},
                "data": {"control-plane-token": token},
            },
        )
        prefect = PrefectOverSandbox(sandbox, Path(tmp), exits).start_server()
        for pool, type_ in ((K8S_POOL, "kubernetes"), (PROCESS_POOL, "process")):
            prefect.create_pool(pool, type_)
            prefect.start_worker(pool, type_)
        env = prefect.job_env()
        # Registered from its module path, not __main__, so the runs can import it.
        naps = importlib.import_module("bench.job_start").naps
        deployments = {
            K8S_POOL: prefect.deploy(
                naps, "naps-k8s", K8S_POOL, {"env": env, "working_dir": str(ROOT)}
            ),
            PROCESS_POOL: prefect.deploy(
                naps, "naps-process", PROCESS_POOL, {"env": env, "working_dir": str(ROOT)}
            ),
        }

        def pod_of(run_id: str) -> dict[str, Any] | None:
            pods, _ = sandbox.cluster.store.list(
                POD, JOB_NAMESPACE, labels=f"prefect.io/flow-run-id={run_id}"
            )
            return pods[0] if pods else None

        def job_pid(run_id: str) -> int | None:
            """The Job pod's process: the container's `prefect flow-run execute`."""
            pod = pod_of(run_id)
            return jobs.pods.pids().get(pod["metadata"]["name"]) if pod else None

        def job_engine_pid(run_id: str) -> int | None:
            """The flow's engine, which the pod's `prefect flow-run execute` starts."""
            pod = pod_of(run_id)
            if pod is None:
                return None
            tag = f"{sandbox_jobs.POD_ENV}={pod['metadata']['uid']}".encode()
            for entry in Path("/proc").iterdir():
                try:
                    if (
                        entry.name.isdigit()
                        and b"prefect.engine" in (entry / "cmdline").read_bytes()
                        and tag in (entry / "environ").read_bytes().split(b"\0")
                    ):
                        return int(entry.name)
                except OSError:
                    continue
            return None

        def process_pid(run_id: str) -> int | None:
            """The process worker's run: the flow's engine, which the worker starts itself."""
            infra = (prefect.flow_run(run_id).get("infrastructure_pid") or "").rsplit(":", 1)[-1]
            return int(infra) if infra.isdigit() else None

        def once(pool: str) -> dict[str, float]:
            scheduled = time.time()
            run_id = prefect.create_run(deployments[pool])
            if pool == K8S_POOL:
                job = process_start(poll(lambda: job_pid(run_id))) - scheduled
                engine = process_start(poll(lambda: job_engine_pid(run_id))) - scheduled
                delays = {JOB: job, JOB_ENGINE: engine}
            else:
                delays = {PROCESS: process_start(poll(lambda: process_pid(run_id))) - scheduled}
            run = prefect.wait_for(run_id, FINAL, 360)
            assert run["state_type"] == "COMPLETED", (pool, run["state"])
            return delays

        def show(what: str, delays: dict[str, float]) -> None:
            figures = "   ".join(f"{k} {v:6.2f} s" for k, v in delays.items())
            print(f"  {what:10} {figures}", flush=True)

        for pool in (K8S_POOL, PROCESS_POOL):  # first imports, first Job: not counted
            show("warm-up", once(pool))
        series: dict[str, list[float]] = {JOB: [], JOB_ENGINE: [], PROCESS: []}
        for i in range(runs):
            order = (K8S_POOL, PROCESS_POOL) if i % 2 == 0 else (PROCESS_POOL, K8S_POOL)
            for pool in order:
                delays = once(pool)
                for k, v in delays.items():
                    series[k].append(v)
                show(f"run {i + 1}", delays)
        print(f"\nscheduled -> process started, {runs} runs per pool, workers polling every 1 s:")
        for name, d in series.items():
            print(
                f"  {name:42} p50 {statistics.median(d):6.2f} s   p95 {percentile(d, 0.95):6.2f} s"
            )
        base = statistics.median(series[PROCESS])
        print(
            f"  ratio Job's process / process pool's process (p50): "
            f"{statistics.median(series[JOB]) / base:.2f}x"
        )
        print(
            f"  ratio Job's flow engine / process pool's process (p50): "
            f"{statistics.median(series[JOB_ENGINE]) / base:.2f}x"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
