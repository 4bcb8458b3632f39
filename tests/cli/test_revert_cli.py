"""`remediate revert ACTION_ID`: the state one change overwrote, written back through the gate,
judged by the sandbox's state and the audit rows."""

from __future__ import annotations

from prefect import flow
from sqlmodel import select
from typer.testing import CliRunner

from remediate.cli import app
from sandbox.resources import DEPLOYMENT
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tasks.changes.mutations import restart_deployment, scale_deployment

NS, WORKER = "alphaswarm", "alphaswarm-worker"


@flow(name="scale-then-restart")
def scale_then_restart(replicas: int) -> None:
    scale_deployment(NS, WORKER, replicas, dry_run=False, reason="test")
    restart_deployment(NS, WORKER, dry_run=False, reason="test")


def replicas(sandbox: SandboxServer) -> int:
    found = sandbox.cluster.store.get(DEPLOYMENT, NS, WORKER)
    assert found is not None
    return int(found["spec"]["replicas"])


def actions(store: str) -> list[IncidentAction]:
    with session_for(store) as session:
        return list(session.exec(select(IncidentAction).order_by(IncidentAction.id)).all())


def test_revert_plans_then_puts_back_the_replica_count(sandbox: SandboxServer, store: str) -> None:
    before = replicas(sandbox)
    scale_then_restart(before + 3)
    assert replicas(sandbox) == before + 3
    scale, restart = actions(store)

    plan = CliRunner().invoke(app, ["revert", str(scale.id)])
    assert plan.exit_code == 0, plan.stderr
    assert plan.stdout.startswith("planned: kubectl scale") and replicas(sandbox) == before + 3

    done = CliRunner().invoke(app, ["revert", str(scale.id), "--apply"])
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith(f"applied: kubectl scale -n {NS} deployment/{WORKER}")
    assert replicas(sandbox) == before
    put = actions(store)[-1]
    assert put.status is ActionStatus.APPLIED and f"revert of action {scale.id}" in put.reason

    nothing = CliRunner().invoke(app, ["revert", str(restart.id), "--apply"])
    assert nothing.exit_code == 2 and "nothing to put back" in nothing.stderr
    unknown = CliRunner().invoke(app, ["revert", "999"])
    assert unknown.exit_code == 2 and "no action 999" in unknown.stderr
