"""`remediate revert ACTION_ID`: the state one change overwrote, written back through the gate,
judged by the sandbox's state and the audit rows."""

from __future__ import annotations

from prefect import flow
from sqlmodel import select
from typer.testing import CliRunner

from remediate.cli import app
from sandbox.resources import DEPLOYMENT, HPA
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tasks.adapters.kubernetes.autoscaling import remove_window_patch
from tasks.changes.mutations import patch_hpa_behavior, restart_deployment, scale_deployment

NS, WORKER, CORE = "alphaswarm", "alphaswarm-worker", "alphaswarm-core"


@flow(name="scale-then-restart")
def scale_then_restart(replicas: int) -> None:
    scale_deployment(NS, WORKER, replicas, dry_run=False, reason="test")
    restart_deployment(NS, CORE, dry_run=False, reason="test")  # the Role restarts the core only


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


@flow(name="widen-hpa-window")
def widen_window() -> None:
    patch_hpa_behavior(NS, CORE, 300, dry_run=False, reason="test")


def hpa_spec(sandbox: SandboxServer) -> dict[str, object]:
    found = sandbox.cluster.store.get(HPA, NS, CORE)
    assert found is not None
    return dict(found["spec"])


def test_a_window_that_was_unset_is_removed_again(sandbox: SandboxServer, store: str) -> None:
    """B's change on an HPA with no `behavior` (the common case), put back: no window and no
    `behavior` the change created, and the audit row says the window is unset again."""
    sandbox.cluster.store.update(HPA, NS, CORE, lambda hpa: hpa["spec"].pop("behavior"))
    widen_window()
    assert hpa_spec(sandbox)["behavior"] == {"scaleUp": {"stabilizationWindowSeconds": 300}}
    (widen,) = actions(store)
    assert widen.revert is not None and widen.revert["value"] is None

    done = CliRunner().invoke(app, ["revert", str(widen.id), "--apply"])
    assert done.exit_code == 0, done.stderr
    assert "remove scaleUp.stabilizationWindowSeconds" in " ".join(done.stdout.split())
    assert "behavior" not in hpa_spec(sandbox)
    put = actions(store)[-1]
    assert put.status is ActionStatus.APPLIED and f"revert of action {widen.id}" in put.reason
    assert "remove scaleUp.stabilizationWindowSeconds (unset before)" in put.summary
    assert put.before == {"scaleUpWindowSeconds": 300}
    assert put.after == {"scaleUpWindowSeconds": None}


def test_removing_the_window_keeps_what_else_behavior_holds(
    sandbox: SandboxServer, store: str
) -> None:
    scale_down = {
        "stabilizationWindowSeconds": 60,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    }

    def only_scale_down(hpa: dict[str, object]) -> None:
        hpa["spec"]["behavior"] = {"scaleDown": scale_down}  # type: ignore[index]

    sandbox.cluster.store.update(HPA, NS, CORE, only_scale_down)
    widen_window()
    (widen,) = actions(store)
    done = CliRunner().invoke(app, ["revert", str(widen.id), "--apply"])
    assert done.exit_code == 0, done.stderr
    assert hpa_spec(sandbox)["behavior"] == {"scaleDown": scale_down}


def test_what_a_real_server_defaulted_goes_with_the_window() -> None:
    """A real API server fills scaleUp's policies and scaleDown in once `behavior` is set, and
    defaults the scale-up window to 0 while `behavior` exists: the exact state before an unset
    window is no `behavior` at all. A policy a human set is kept."""
    defaulted = {
        "scaleUp": {
            "stabilizationWindowSeconds": 300,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    window = "/spec/behavior/scaleUp/stabilizationWindowSeconds"
    test = {"op": "test", "path": window, "value": 300}
    assert remove_window_patch(defaulted, 300) == [
        test,
        {"op": "remove", "path": "/spec/behavior"},
    ]
    human = {**defaulted, "scaleDown": {"stabilizationWindowSeconds": 60}}
    assert remove_window_patch(human, 300) == [test, {"op": "remove", "path": window}]
    assert remove_window_patch(
        {"scaleUp": {"stabilizationWindowSeconds": 300}, "scaleDown": {"selectPolicy": "Min"}}, 300
    ) == [test, {"op": "remove", "path": "/spec/behavior/scaleUp"}]
