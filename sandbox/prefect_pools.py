"""A real Prefect server and real workers over a sandbox: what the Kubernetes-work-pool test and
the job-start benchmark share.

    python -m remediate.prefect_server                 `remediate up`'s Prefect server, on a free
                                                       port, its state in a temp dir
    prefect work-pool create NAME --type kubernetes    with infra/'s base job template
    prefect worker start --pool NAME --type kubernetes KUBECONFIG = the sandbox's kubeconfig
    prefect worker start --pool NAME --type process    the baseline the benchmark compares with

The Kubernetes worker (prefect-kubernetes) submits each flow run as a batch/v1 Job to the
sandbox, whose Jobs run their pods as real processes (`sandbox.jobs`), and its observer (kopf)
watches the Jobs and pods to report what happens to them. Every child runs in its own process
group and is stopped with everything it started when the ExitStack closes.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from remediate.processes import Child, answers, free_port, prefect_cli, prefect_server
from sandbox.flow_env import flow_env
from sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[1]
BASE_JOB_TEMPLATE = ROOT / "infra" / "work-pool" / "kubernetes-base-job-template.json"
JOB_NAMESPACE = "alphaswarm-admin"
PREFECT_READY_SECONDS = 120.0
WORKER_READY_SECONDS = 90.0
# Workers poll every second instead of Prefect's 10 s default, so a test waits on the system,
# not the poll, and the benchmark compares submission, not polling luck (both pools alike).
QUERY_SECONDS = "1"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass
class PrefectOverSandbox:
    sandbox: SandboxServer
    state: Path
    exits: ExitStack
    api_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    # -- processes ---------------------------------------------------------------------------
    def start_server(self) -> PrefectOverSandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.state / "prefect"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        port = free_port()
        server = self._child(
            "prefect-server",
            prefect_server("127.0.0.1", port),
            env,
        )
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.env = {**env, "PREFECT_API_URL": self.api_url}
        server.wait_until(answers(f"{self.api_url}/health"), PREFECT_READY_SECONDS, "API health")
        return self

    def _child(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, dict(env), self.logs / f"{name}.log").start()
        self.exits.callback(child.stop)
        self.children.append(child)
        return child

    def cli(self, *args: str) -> None:
        """A `prefect` CLI command against this server; its output goes to the CLI log."""
        child = Child(
            "prefect-cli", [prefect_cli(), *args], self.env, self.logs / "cli.log"
        ).start()
        assert child.process is not None
        if child.process.wait(timeout=120) != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{child.tail()}")

    def create_pool(self, name: str, type_: str) -> None:
        extra = ["--base-job-template", str(BASE_JOB_TEMPLATE)] if type_ == "kubernetes" else []
        self.cli("work-pool", "create", name, "--type", type_, *extra)

    def start_worker(self, pool: str, type_: str) -> Child:
        """A worker on `pool`; returns once the API lists it as online."""
        kubeconfig = self.sandbox.write_kubeconfig(self.state / "kubeconfig")
        env = {
            **self.env,
            "PREFECT_WORKER_QUERY_SECONDS": QUERY_SECONDS,
            "KUBECONFIG": str(kubeconfig),
            # The observer watches only the namespace the template submits to.
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES": JOB_NAMESPACE,
        }
        name = f"{pool}-worker"
        argv = [prefect_cli(), "worker", "start", "--pool", pool, "--type", type_, "--name", name]
        worker = self._child(name, argv, env)
        worker.wait_until(self._worker_online(pool, name), WORKER_READY_SECONDS, "worker online")
        return worker

    def _worker_online(self, pool: str, name: str) -> Any:
        def online() -> bool:
            workers = self.call("POST", f"/work_pools/{pool}/workers/filter", json={}, check=False)
            return any(w.get("name") == name for w in workers or [])

        return online

    # -- deployments and runs ----------------------------------------------------------------
    def job_env(self) -> dict[str, str]:
        """The env a flow run needs to reach this sandbox, less the control-plane token (the
        Job's pod gets that from the alphaswarm-remediate Secret, as in production)."""
        kubeconfig = self.sandbox.write_kubeconfig(self.state / "kubeconfig")
        env = flow_env(self.sandbox.url, self.sandbox.cluster, kubeconfig)
        env.pop("REMEDIATE_CONTROL_PLANE__TOKEN")
        env.update(
            PYTHONPATH=str(ROOT),  # the image is not real: the flows import from this checkout
            PREFECT_HOME=str(self.state / "flow-runs"),
            NO_PROXY="127.0.0.1,localhost",
            REMEDIATE_STORE__URL=f"sqlite:///{self.state / 'incidents.db'}",
        )
        return env

    def deploy(self, flow: Any, name: str, pool: str, job_variables: dict[str, Any]) -> str:
        """Register `flow` (a module-level flow of this checkout) on `pool`; its id."""
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from prefect.types.entrypoint import EntrypointType

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            deployment = flow.to_deployment(
                name=name,
                entrypoint_type=EntrypointType.MODULE_PATH,
                job_variables=job_variables,
            )
            return str(deployment.apply(work_pool_name=pool))

    def create_run(self, deployment_id: str, parameters: dict[str, Any] | None = None) -> str:
        run = self.call(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",
            json={"parameters": parameters or {}},
        )
        return str(run["id"])

    def flow_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.call("GET", f"/flow_runs/{run_id}")
        return run

    def states(self, run_id: str) -> list[dict[str, Any]]:
        """The run's state history, oldest first (a state a poll would miss is still here)."""
        found: list[dict[str, Any]] = self.call("GET", f"/flow_run_states/?flow_run_id={run_id}")
        return sorted(found, key=lambda s: s["timestamp"])

    def wait_for(self, run_id: str, states: tuple[str, ...], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(run_id)
            if run["state_type"] in states:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run['state_name']}:\n{self.tails()}")
            time.sleep(0.5)

    def tails(self, lines: int = 30) -> str:
        """The last lines of every child's log, for a failure message."""
        return "\n".join(f"--- {c.name}\n{c.tail(lines)}" for c in self.children)

    def call(self, method: str, path: str, *, check: bool = True, **kwargs: Any) -> Any:
        """The API's JSON answer; SQLite's 503 while the database is locked is retried."""
        for _ in range(20):
            try:
                answer = httpx.request(method, f"{self.api_url}{path}", timeout=30, **kwargs)
            except httpx.TransportError:
                if check:
                    raise
                return None
            if answer.status_code != 503:
                break
            time.sleep(0.5)
        if not check and answer.is_error:
            return None
        return answer.raise_for_status().json() if answer.content else None
