"""The mutation gate against a sandbox over loopback: plans change nothing, applies land once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.journal import Fault
from sandbox.server import SandboxServer
from tasks.adapters.errors import TransientError
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.changes import gate
from tasks.changes.models import (
    ActionKind,
    ChangeStatus,
    DeletePods,
    PatchHpaWindow,
    Reach,
    RestartDeployment,
    ScaleWorkload,
    SetDeploymentEnv,
    Target,
)
from tasks.settings import KubeAccess

NS = "alphaswarm"
CORE = Target(kind="Deployment", namespace=NS, name="alphaswarm-core")
WORKER = Target(kind="Deployment", namespace=NS, name="alphaswarm-worker")
HPA = Target(kind="HorizontalPodAutoscaler", namespace=NS, name="alphaswarm-core")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(tick_seconds=0.05) as srv:
        yield srv


@pytest.fixture
def cluster(sandbox: SandboxServer, tmp_path: Path) -> Iterator[KubernetesCluster]:
    access = KubeAccess(kubeconfig=sandbox.write_kubeconfig(tmp_path / "kc"))
    with KubernetesCluster(access) as c:
        yield c
    gate.forget()


class LosesAnswers:
    """A cluster whose next mutation takes effect but whose answer is lost on the way back."""

    def __init__(self, real: KubernetesCluster) -> None:
        self.real, self.lose = real, True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name not in {"rollout_restart", "set_replicas", "set_hpa_scale_up_window", "set_env"}:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if self.lose:
                self.lose = False
                raise TransientError("read timed out", operation=name)
            return result

        return call


ALL_CHANGES = [
    RestartDeployment(target=CORE),
    ScaleWorkload(target=WORKER, replicas=8),
    PatchHpaWindow(target=HPA, seconds=300),
    SetDeploymentEnv(target=CORE, variable="ALPHASWARM_AUTH_ENFORCE", value="permissive"),
    DeletePods(
        target=Target(kind="Pod", namespace=NS, name="redis-master-0"), pod="redis-master-0"
    ),
]


@pytest.mark.parametrize("change", ALL_CHANGES, ids=lambda c: c.action.value)
def test_dry_run_plans_with_the_server_and_changes_nothing(
    sandbox: SandboxServer, cluster: KubernetesCluster, change: Any
) -> None:
    reach = Reach(cluster=cluster)
    before = change.observe(reach)
    record = gate.apply_change(change, key="k-dry", dry_run=True, reach=reach)
    assert record.status is ChangeStatus.PLANNED and record.dry_run
    assert record.before == before and record.after
    journal = sandbox.cluster.journal
    assert journal.mutations() == []
    sent = journal.mutations(include_dry_run=True)
    assert sent and all(r.dry_run for r in sent)
    assert change.observe(reach) == before


def test_apply_changes_once_and_keeps_the_revert(
    sandbox: SandboxServer, cluster: KubernetesCluster
) -> None:
    reach = Reach(cluster=cluster)
    change = ScaleWorkload(target=WORKER, replicas=5)
    previous = change.observe(reach)["replicas"]
    record = gate.apply_change(change, key="k1", dry_run=False, reach=reach)
    assert record.status is ChangeStatus.APPLIED and record.after == {"replicas": 5}
    assert record.revert is not None and record.revert.value == previous
    assert record.revert.action is ActionKind.SCALE
    # The same intent again (a retry of the same task run): the same record, nothing sent.
    assert gate.apply_change(change, key="k1", dry_run=False, reach=reach) == record
    # A new intent for a state that already holds: nothing sent either.
    again = gate.apply_change(change, key="k2", dry_run=False, reach=reach)
    assert again.status is ChangeStatus.ALREADY_DONE and again.revert is None
    assert len(sandbox.cluster.journal.mutations(r"/deployments/alphaswarm-worker/scale$")) == 1
    assert len(sandbox.cluster.journal.mutations()) == 1


def test_a_transient_failure_then_a_retry_applies_exactly_once(
    sandbox: SandboxServer, cluster: KubernetesCluster
) -> None:
    sandbox.cluster.faults.add(
        Fault(
            path=r"/horizontalpodautoscalers/",
            methods=frozenset({"PATCH"}),
            error_rate=1.0,
            status=503,
            times=1,
        )
    )
    reach = Reach(cluster=cluster)
    change = PatchHpaWindow(target=HPA, seconds=300)
    with pytest.raises(TransientError):
        gate.apply_change(change, key="k", dry_run=False, reach=reach)
    record = gate.apply_change(change, key="k", dry_run=False, reach=reach)
    assert record.status is ChangeStatus.APPLIED and record.before == {"scaleUpWindowSeconds": 0}
    patches = sandbox.cluster.journal.requests("PATCH", r"/horizontalpodautoscalers/")
    assert [r.status for r in patches] == [503, 200]
    assert len(sandbox.cluster.journal.mutations()) == 1


@pytest.mark.parametrize(
    "change",
    [
        RestartDeployment(target=CORE),
        ScaleWorkload(target=WORKER, replicas=6),
        PatchHpaWindow(target=HPA, seconds=300),
        SetDeploymentEnv(target=CORE, variable="ALPHASWARM_AUTH_ENFORCE", value="permissive"),
    ],
    ids=lambda c: c.action.value,
)
def test_a_write_whose_answer_was_lost_is_not_repeated(
    sandbox: SandboxServer, cluster: KubernetesCluster, change: Any
) -> None:
    reach: Any = Reach(cluster=LosesAnswers(cluster))  # type: ignore[arg-type]
    before = change.observe(reach)
    with pytest.raises(TransientError):
        gate.apply_change(change, key="k", dry_run=False, reach=reach)
    record = gate.apply_change(change, key="k", dry_run=False, reach=reach)
    assert record.status is ChangeStatus.APPLIED and "not repeated" in record.note
    assert record.before == before
    assert len(sandbox.cluster.journal.mutations()) == 1


def test_delete_pods_by_selector_never_deletes_the_replacements(
    sandbox: SandboxServer, cluster: KubernetesCluster
) -> None:
    reach = Reach(cluster=cluster)
    change = DeletePods(
        target=Target(kind="Pod", namespace=NS, name="-l app=postgres"), selector="app=postgres"
    )
    first = gate.apply_change(change, key="k", dry_run=False, reach=reach)
    assert first.status is ChangeStatus.APPLIED and set(first.after.values()) == {"deleted"}
    gate.forget("k")  # even with the ledger gone, a new intent sees fresh pods as fresh
    deletes = len(sandbox.cluster.journal.mutations())
    assert deletes == len(first.before) >= 1


def test_the_target_lock_refuses_a_second_actor(cluster: KubernetesCluster) -> None:
    with gate.target_lock(CORE), pytest.raises(gate.TargetBusy):
        gate.apply_change(
            RestartDeployment(target=CORE),
            key="k",
            dry_run=True,
            reach=Reach(cluster=cluster),
            lock_timeout=0.1,
        )
