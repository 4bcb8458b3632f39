"""Serve the flows from one long-running process (no work pool needed): the lightest production
shape on one machine. Each run happens in a subprocess of this one.

    python -m deployments.serve

- `health-sweep`, every 5 minutes: the runbook's common diagnostics, read-only.
- `triage`, on demand: what the Prefect UI (and the Alertmanager intake, when it lands) starts
  with an incident. Its default is a dry run; applying is a parameter an operator sets.
- `revert-auth-enforce`, on demand: runbook D schedules a run of it whenever it flips
  ALPHASWARM_AUTH_ENFORCE to permissive. A scheduled run only happens if something serves the
  deployment, so it is served here, under the very name `schedule_revert` registers.
- `post-incident`, on demand: re-render an incident's report from the store (triage runs it
  itself when an incident resolves or escalates).

`deployments/prefect.yaml` declares the same deployments for a work pool; keep the two in step
(`tests/unit/test_deployments.py` checks it).
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.health_sweep import health_sweep
from flows.post_incident import post_incident
from flows.revert_auth_enforce import DEPLOYMENT_NAME as REVERT_DEPLOYMENT
from flows.revert_auth_enforce import revert_auth_enforce
from flows.triage import triage
from store.engine import engine_for
from store.schema import StoreNotMigrated
from tasks.settings import Settings

HEALTH_SWEEP_INTERVAL_SECONDS = 300
TRIAGE_DEPLOYMENT = "triage"
POST_INCIDENT_DEPLOYMENT = "post-incident"


def runner_deployments() -> list[RunnerDeployment]:
    """The deployments this process serves (built, not yet registered)."""
    return [
        health_sweep.to_deployment(
            name="health-sweep",
            interval=HEALTH_SWEEP_INTERVAL_SECONDS,
            description="The runbook's common diagnostics, read-only, on a schedule.",
            tags=["read-only", "sweep"],
        ),
        triage.to_deployment(
            name=TRIAGE_DEPLOYMENT,
            description=(
                "Decide the runbook branch of an incident on probed evidence and run that "
                "scenario's flow. Dry run unless params.dry_run is false."
            ),
            tags=["triage"],
        ),
        revert_auth_enforce.to_deployment(
            name=REVERT_DEPLOYMENT,
            description="Restore ALPHASWARM_AUTH_ENFORCE after runbook D's permissive bypass",
            tags=["hard-rule-revert", "P1"],
        ),
        post_incident.to_deployment(
            name=POST_INCIDENT_DEPLOYMENT,
            description="Write an incident's post-incident report from the incident store.",
            tags=["post-incident"],
        ),
    ]


def require_migrated_store() -> None:
    """Refuse to serve flows that would fail on their first incident record."""
    try:
        engine_for(Settings().store.url.get_secret_value())
    except StoreNotMigrated as exc:
        raise SystemExit(str(exc)) from exc


def main() -> None:
    require_migrated_store()
    # Restarting the serve process must not pause the schedules operators rely on.
    serve(*runner_deployments(), pause_on_shutdown=False)


if __name__ == "__main__":
    main()
