"""The guards' state in the store, on SQLite and PostgreSQL: the lease (one statement takes it:
another holder's live lease refuses, an expired one is taken over, the holder takes its own
again, several are taken all or none) and the one query the cooldown, the circuit breaker and
the budget count from (dry runs never count; the budget counts reserved rows in progress)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from store import safety
from store.engine import session_for
from store.models import ActionStatus, IncidentAction, TargetLease
from store.types import utcnow

CORE, WORKER = "Deployment/alphaswarm/alphaswarm-core", "Deployment/alphaswarm/alphaswarm-worker"
RESTART = "kubectl rollout restart -n alphaswarm deployment/alphaswarm-core"


@pytest.fixture
def store(any_store: str) -> str:
    return any_store


def take(url: str, *keys: str, holder: str, seconds: float = 60) -> bool:
    with session_for(url) as session:
        return safety.take_leases(session, target_keys=keys, holder=holder, seconds=seconds)


def holders(url: str) -> dict[str, str]:
    with session_for(url, read_only=True) as session:
        return {row.target_key: row.holder for row in session.exec(select(TargetLease)).all()}


def test_a_live_lease_is_one_holders_until_it_expires_or_is_released(store: str) -> None:
    assert take(store, CORE, holder="run-a")
    assert not take(store, CORE, holder="run-b")
    assert take(store, CORE, holder="run-a")  # its own, again
    assert holders(store) == {CORE: "run-a"}
    with session_for(store) as session:
        safety.release_leases(session, target_keys=(CORE,), holder="run-a")
    assert take(store, CORE, holder="run-b") and holders(store) == {CORE: "run-b"}


def test_an_expired_lease_is_taken_over(store: str) -> None:
    assert take(store, CORE, holder="killed-run")
    assert not take(store, CORE, holder="run-b")
    with session_for(store) as session:  # expired a minute ago
        lease = session.get(TargetLease, CORE)
        assert lease is not None
        lease.expires_at = utcnow() - timedelta(minutes=1)
        session.add(lease)
    assert take(store, CORE, holder="run-b") and holders(store) == {CORE: "run-b"}


def test_several_leases_are_taken_all_or_none(store: str) -> None:
    assert take(store, WORKER, holder="run-a")
    assert not take(store, CORE, WORKER, holder="run-b")
    assert holders(store) == {WORKER: "run-a"}  # the core's was not kept
    assert take(store, CORE, WORKER, holder="run-a")
    assert holders(store) == {CORE: "run-a", WORKER: "run-a"}


def row(
    key: str,
    *,
    status: ActionStatus = ActionStatus.APPLIED,
    age: timedelta = timedelta(minutes=1),
    action: str = "rollout-restart",
    target: str = CORE,
    summary: str = RESTART,
    dry_run: bool = False,
    reserved: bool = False,
) -> IncidentAction:
    at = utcnow() - age
    return IncidentAction(
        change_key=key,
        action=action,
        target_key=target,
        status=status,
        dry_run=dry_run,
        summary=summary,
        started_at=at,
        finished_at=None if status is ActionStatus.IN_PROGRESS else at,
        reserved_at=at if reserved else None,
        flow_run_name=key,
    )


def test_one_query_counts_what_the_cooldown_the_breaker_and_the_budget_count(store: str) -> None:
    rows = [
        row("restart-1m", age=timedelta(minutes=1)),
        row("restart-20m", age=timedelta(minutes=20)),
        row("restart-2h", age=timedelta(hours=2)),  # outside every window
        row("other-summary", summary="kubectl rollout restart ... other", age=timedelta(minutes=2)),
        row("worker", target=WORKER, summary="scale", action="scale"),
        row("dry-run", dry_run=True),
        row("refused", status=ActionStatus.REFUSED),
        row("being-sent", status=ActionStatus.IN_PROGRESS, reserved=True),
        row("not-reserved", status=ActionStatus.IN_PROGRESS),
        row(
            "old-reservation",
            status=ActionStatus.IN_PROGRESS,
            reserved=True,
            age=timedelta(hours=2),
        ),
    ]
    with session_for(store) as session:
        session.add_all(rows)
    now = utcnow()
    with session_for(store) as session:
        seen = safety.history(
            session,
            action="rollout-restart",
            target_key=CORE,
            summary=RESTART,
            budget_since=now - timedelta(hours=1),
            breaker_since=now - timedelta(minutes=30),
            cooldown_since=now - timedelta(minutes=5),
        )
        # 1m, 20m, the other summary and the worker took effect; one slot is being sent
        assert seen.budget == 5
        assert seen.same_target == 3  # 1m, 20m, the other summary: the same action and target
        assert seen.last_same is not None and seen.last_same.change_key == "restart-1m"

        later = safety.history(
            session,
            action="rollout-restart",
            target_key=CORE,
            summary=RESTART,
            budget_since=now - timedelta(hours=1),
            breaker_since=now - timedelta(hours=3),
            cooldown_since=now - timedelta(seconds=10),
        )
        assert later.same_target == 4 and later.last_same is None  # the 2 h one counts too
        assert (
            safety.history(
                session,
                action="rollout-restart",
                target_key=CORE,
                summary=RESTART,
                budget_since=now - timedelta(hours=1),
                breaker_since=now - timedelta(hours=1),
            ).last_same
            is None
        )  # no cooldown asked
