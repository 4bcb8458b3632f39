"""Every deployment, once: the table `deployments/serve.py` serves and `deployments/prefect.yaml`
is generated from, so the two never drift.

    python -m deployments.table --write-yaml    # after editing the table
    python -m deployments.table                 # print the yaml it renders

`tests/unit/test_deployments.py` checks that the committed prefect.yaml is this rendering.

Every flow here takes flat keyword parameters with descriptions (`flows.runs`), so each
deployment's run form in the Prefect UI shows its fields; `dry_run` is True unless the form
says otherwise. No parameters are baked into a deployment: a run started without any is a
dry run with the flow's defaults.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from flows.health_sweep import health_sweep
from flows.hpa_thrash import remediate_hpa_thrash
from flows.ingress_503 import remediate_ingress_503
from flows.jwks_outage import remediate_jwks_outage
from flows.pod_crash import remediate_pod_crash
from flows.post_incident import post_incident
from flows.queue_backlog import remediate_queue_backlog
from flows.revert_auth_enforce import DEPLOYMENT_DESCRIPTION as REVERT_DESCRIPTION
from flows.revert_auth_enforce import DEPLOYMENT_NAME as REVERT_DEPLOYMENT
from flows.revert_auth_enforce import DEPLOYMENT_TAGS as REVERT_TAGS
from flows.revert_auth_enforce import revert_auth_enforce
from flows.stateful_failover import remediate_stateful_failover
from flows.triage import triage

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
PREFECT_VERSION = "3.9.1"
WORK_POOL = {"name": "alphaswarm-remediate", "work_queue_name": "default"}
# What the pool's runs are told about where they run (job_variables, over the base job
# template's own): production, so no run there takes itself for dev.
JOB_ENV = {"REMEDIATE_ENVIRONMENT": "production"}
# The image's working directory: the project root, from where the flows package imports.
PULL = [{"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}]

HEALTH_SWEEP_INTERVAL_SECONDS = 300
TRIAGE_DEPLOYMENT = "triage"
POST_INCIDENT_DEPLOYMENT = "post-incident"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, where its code is, how it shows in the UI, when it runs."""

    name: str
    flow: Flow[..., Any]
    description: str
    tags: tuple[str, ...]
    interval_seconds: int | None = None  # None: on demand only
    concurrency_limit: int | None = None  # None: no limit

    @property
    def entrypoint(self) -> str:
        """Where the flow is, as a module path: a run imports it (a served run finds it already
        imported in its warm process) instead of executing the flow's file anew, and an image
        needs the package installed, not a working directory."""
        return f"{self.flow.fn.__module__}.{self.flow.fn.__name__}"

    def runner_deployment(self) -> RunnerDeployment:
        """The deployment `serve` registers (built, not yet registered)."""
        deployment: RunnerDeployment = self.flow.to_deployment(  # type: ignore[assignment]
            name=self.name,
            interval=self.interval_seconds,
            concurrency_limit=self.concurrency_limit,
            description=self.description,
            tags=list(self.tags),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        return deployment

    def as_yaml(self) -> dict[str, Any]:
        """Its entry in prefect.yaml's `deployments:`."""
        entry: dict[str, Any] = {
            "name": self.name,
            "entrypoint": self.entrypoint,
            "description": self.description,
            "tags": list(self.tags),
        }
        if self.interval_seconds is not None:
            entry["schedules"] = [{"interval": self.interval_seconds}]
        if self.concurrency_limit is not None:
            entry["concurrency_limit"] = self.concurrency_limit
        # A new dict each time: the same object twice would be a YAML alias.
        entry["work_pool"] = {**WORK_POOL, "job_variables": {"env": dict(JOB_ENV)}}
        return entry


def _scenario(name: str, flow: Flow[..., Any], branch: str, what: str) -> DeploymentSpec:
    return DeploymentSpec(
        name=name,
        flow=flow,
        description=(
            f"Runbook {branch}: {what}. Started by triage; run it by hand to target it "
            "directly. Dry run unless dry_run is unticked."
        ),
        tags=("scenario", f"runbook-{branch}"),
    )


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name=TRIAGE_DEPLOYMENT,
        flow=triage,
        description=(
            "Decide the runbook branch of an incident (Alertmanager alerts, or none for a "
            "sweep) on probed evidence and run that scenario's flow. Dry run unless dry_run "
            "is unticked."
        ),
        tags=("triage",),
    ),
    _scenario(
        "pod-crash",
        remediate_pod_crash,
        "A",
        "a single pod crash-loops: inspect it, rolling-restart its Deployment, verify",
    ),
    _scenario(
        "hpa-thrash",
        remediate_hpa_thrash,
        "B",
        "the HPA thrashes (or several pods crash-loop): widen its scale-up window, verify",
    ),
    _scenario(
        "queue-backlog",
        remediate_queue_backlog,
        "C",
        "the Celery queue is deep: scale the workers to 8, verify the queue drains",
    ),
    _scenario(
        "jwks-outage",
        remediate_jwks_outage,
        "D",
        "Auth0 JWKS returns 503: tell the cause, flip auth to permissive only when approved",
    ),
    _scenario(
        "ingress-503",
        remediate_ingress_503,
        "E",
        "the Ingress returns 503: restart what is wedged, verify the endpoints are ready",
    ),
    _scenario(
        "stateful-failover",
        remediate_stateful_failover,
        "F",
        "Postgres or Redis is down: delete its pod, verify same volumes and same data",
    ),
    DeploymentSpec(
        name="health-sweep",
        flow=health_sweep,
        description="The runbook's common diagnostics, read-only, on a schedule.",
        tags=("read-only", "sweep"),
        interval_seconds=HEALTH_SWEEP_INTERVAL_SECONDS,
        # A sweep that outlasts its interval must not pile up behind itself.
        concurrency_limit=1,
    ),
    DeploymentSpec(
        name=POST_INCIDENT_DEPLOYMENT,
        flow=post_incident,
        description="Write an incident's post-incident report from the incident store.",
        tags=("post-incident",),
    ),
    # Runbook D schedules runs of this one by name: `schedule_revert` registers it the same way.
    DeploymentSpec(
        name=REVERT_DEPLOYMENT,
        flow=revert_auth_enforce,
        description=REVERT_DESCRIPTION,
        tags=REVERT_TAGS,
    ),
)


def runner_deployments() -> list[RunnerDeployment]:
    """Every deployment in the table, as `serve` takes them."""
    return [spec.runner_deployment() for spec in DEPLOYMENTS]


HEADER = """\
# GENERATED from deployments/table.py by `python -m deployments.table --write-yaml`: edit the
# table, not this file (tests/unit/test_deployments.py checks they agree).
# Deployments for a Prefect work pool (Kubernetes in production); `python -m deployments.serve`
# serves the same table without a pool, on one machine.
"""


def render_prefect_yaml() -> str:
    """prefect.yaml as the table declares it."""
    document = {
        "name": "alphaswarm-remediate",
        "prefect-version": PREFECT_VERSION,
        "build": None,
        "push": None,
        "pull": PULL,
        "deployments": [spec.as_yaml() for spec in DEPLOYMENTS],
    }
    body = yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.table",
        description="Render deployments/prefect.yaml from the deployments table.",
    )
    parser.add_argument(
        "--write-yaml", action="store_true", help=f"write {PREFECT_YAML.name} instead of printing"
    )
    args = parser.parse_args(argv)
    rendered = render_prefect_yaml()
    if args.write_yaml:
        PREFECT_YAML.write_text(rendered, encoding="utf-8")
        print(f"wrote {PREFECT_YAML}")
    else:
        sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
