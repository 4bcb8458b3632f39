"""Issue 3's "done when", one incident at a time: the incident injected into the sandbox, an
Alertmanager payload handed to triage, the scenario flow run as a subflow through the real
Prefect engine, and the result judged by the sandbox alone: its journal (the one change the
runbook allows, and nothing else) and its state (the incident is gone). The same run as a dry
run plans that change and leaves the sandbox as it was. Scenario C needs real Celery workers on
a real broker, so its end-to-end runs (apply, dry run, faults, Redis outage with a broker) live
in test_queue_backlog.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from flows.triage import TriageOutcome, VerifyPolicy, triage
from sandbox import injections
from sandbox.resources import DEPLOYMENT, EVENT, HPA, INGRESS
from sandbox.server import SandboxServer
from tasks.changes.models import ChangeStatus
from tasks.models.alerts import parse_alertmanager
from tasks.models.diagnosis import Scenario
from tasks.models.outcome import OutcomeStatus
from tests.flows.sandbox_settings import alert_payload, point_flows_at
from tests.flows.sandbox_state import (
    crash_looping,
    fail_or_slow_one_request_in_ten,
    pods,
    ready_count,
    ready_endpoints,
    settle,
)

NS, ADMIN_NS, INGRESS_NS = "alphaswarm", "alphaswarm-admin", "ingress-nginx"
CORE, WORKER, CLIENT = "alphaswarm-core", "alphaswarm-worker", "alphaswarm-client"
CONTROLLER, CONTROLLER_PODS = "ingress-nginx-controller", "app.kubernetes.io/name=ingress-nginx"
VAR = "ALPHASWARM_AUTH_ENFORCE"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{}/deployments/{}"
CORE_PATH = DEPLOYMENTS.format(NS, CORE)
CLIENT_PATH = DEPLOYMENTS.format(NS, CLIENT)
CONTROLLER_PATH = DEPLOYMENTS.format(INGRESS_NS, CONTROLLER)
HPA_PATH = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{CORE}"
# The sandbox ticks every 0.05 s: a second without a rescale is twenty quiet HPA decisions.
REHEARSAL = VerifyPolicy(attempts=150, delay_seconds=0.1, quiet_seconds=1.0)

Check = Callable[[SandboxServer], bool]


@pytest.fixture(autouse=True)
def _settings(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    point_flows_at(sandbox, monkeypatch)


# -- what each incident looks like, and what healed looks like, read from the sandbox's store --


def rescales(sandbox: SandboxServer) -> int:
    events, _ = sandbox.cluster.store.list(EVENT, NS)
    return sum(
        int(e.get("count") or 1)
        for e in events
        if e.get("reason") == "SuccessfulRescale" and e["involvedObject"]["name"] == CORE
    )


def scale_up_window(sandbox: SandboxServer) -> object:
    hpa = sandbox.cluster.store.get(HPA, NS, CORE)
    assert hpa is not None
    return ((hpa["spec"].get("behavior") or {}).get("scaleUp") or {}).get(
        "stabilizationWindowSeconds"
    )


def auth_enforce(sandbox: SandboxServer) -> str | None:
    deployment = sandbox.cluster.store.get(DEPLOYMENT, NS, CORE)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return next((e.get("value") for e in env if e["name"] == VAR), None)


def core_pods_auth(sandbox: SandboxServer) -> set[str | None]:
    return {
        next(
            (
                e.get("value")
                for e in p["spec"]["containers"][0].get("env") or []
                if e["name"] == VAR
            ),
            None,
        )
        for p in pods(sandbox, NS, f"app={CORE}")
    }


def one_core_pod_crashes(sandbox: SandboxServer) -> bool:
    return len(crash_looping(sandbox, NS, f"app={CORE}")) == 1


def no_core_pod_crashes(sandbox: SandboxServer) -> bool:
    return (
        crash_looping(sandbox, NS, f"app={CORE}") == []
        and ready_count(sandbox, NS, f"app={CORE}") >= 3
    )


def several_core_pods_crash(sandbox: SandboxServer) -> bool:
    return len(crash_looping(sandbox, NS, f"app={CORE}")) >= 2


def hpa_flaps(sandbox: SandboxServer) -> bool:
    return rescales(sandbox) >= 6 and len(crash_looping(sandbox, NS, f"app={CORE}")) >= 2


def hpa_stable(sandbox: SandboxServer) -> bool:
    before = rescales(sandbox)
    for _ in range(10):
        sandbox.controllers.step()
    return (
        scale_up_window(sandbox) == 300
        and rescales(sandbox) == before
        and (no_core_pod_crashes(sandbox))
    )


def jwks_fails(sandbox: SandboxServer) -> bool:
    return (
        sandbox.cluster.behaviour.jwks_status != 200 or not sandbox.cluster.behaviour.external_dns
    )


def jwks_fails_inside(sandbox: SandboxServer) -> bool:
    """The core pods log jwks_unreachable: their curl of the JWKS URL fails."""
    return any(
        "jwks_unreachable" in line
        for pod in pods(sandbox, NS, f"app={CORE}")
        for line in sandbox.cluster.runtime.logs(pod["metadata"]["uid"], "app", previous=False)
        or []
    )


def served_permissively(sandbox: SandboxServer) -> bool:
    return auth_enforce(sandbox) == "permissive" and core_pods_auth(sandbox) == {"permissive"}


def still_enforcing(sandbox: SandboxServer) -> bool:
    return auth_enforce(sandbox) == "enforce" and "permissive" not in core_pods_auth(sandbox)


def client_endpoints_empty(sandbox: SandboxServer) -> bool:
    return ready_endpoints(sandbox, NS, CLIENT) == 0


def client_endpoints_back(sandbox: SandboxServer) -> bool:
    return ready_endpoints(sandbox, NS, CLIENT) == 2


def controller_crashes(sandbox: SandboxServer) -> bool:
    return len(crash_looping(sandbox, INGRESS_NS, CONTROLLER_PODS)) == 1


def controller_back(sandbox: SandboxServer) -> bool:
    return (
        crash_looping(sandbox, INGRESS_NS, CONTROLLER_PODS) == []
        and ready_endpoints(sandbox, INGRESS_NS, CONTROLLER) == 1
        and client_endpoints_back(sandbox)
    )


def postgres_crashes(sandbox: SandboxServer) -> bool:
    return crash_looping(sandbox, NS, "app=postgres") == ["postgres-0"]


def postgres_back(sandbox: SandboxServer) -> bool:
    return (
        crash_looping(sandbox, NS, "app=postgres") == []
        and ready_count(sandbox, NS, "app=postgres") == 1
    )


def redis_and_workers_crash(sandbox: SandboxServer) -> bool:
    return (
        crash_looping(sandbox, NS, "app=redis") == ["redis-master-0"]
        and len(crash_looping(sandbox, NS, f"app={WORKER}")) == 2
    )


def redis_back(sandbox: SandboxServer) -> bool:
    return (
        crash_looping(sandbox, NS, "app=redis") == [] and ready_count(sandbox, NS, "app=redis") == 1
    )


def workers_back(sandbox: SandboxServer) -> bool:
    return crash_looping(sandbox, NS, f"app={WORKER}") == []


@dataclass(frozen=True)
class Case:
    incident: str
    alerts: str  # tests/fixtures/alerts/<alerts>.json
    scenario: Scenario
    mutation: tuple[str, str]  # the one write the runbook allows: (method, path)
    showing: Check  # the incident's symptoms are there
    healed: Check  # and gone after the fix
    approve_permissive: bool = False
    approve_postgres_delete: bool = False

    @property
    def approvals(self) -> dict[str, bool]:
        """The dangerous steps this incident's fix takes, pre-approved as an operator would."""
        return {
            "approve_permissive": self.approve_permissive,
            "approve_postgres_delete": self.approve_postgres_delete,
        }


CASES = {
    c.incident: c
    for c in (
        Case(
            "crashloop-single",
            "crashloop-single",
            Scenario.POD_CRASH,
            ("PATCH", CORE_PATH),
            one_core_pod_crashes,
            no_core_pod_crashes,
        ),
        Case(
            "hpa-thrash",
            "hpa-thrash",
            Scenario.HPA_THRASH,
            ("PATCH", HPA_PATH),
            hpa_flaps,
            hpa_stable,
        ),
        # Several crashes behind a calm HPA: B's inspection, then A's restart; never the HPA.
        Case(
            "crashloop-several",
            "crashloop-several",
            Scenario.HPA_THRASH,
            ("PATCH", CORE_PATH),
            several_core_pods_crash,
            no_core_pod_crashes,
        ),
        Case(
            "jwks-503:auth0-down",
            "jwks-503",
            Scenario.JWKS_OUTAGE,
            ("PATCH", CORE_PATH),
            jwks_fails,
            served_permissively,
            approve_permissive=True,
        ),
        # Blocked egress and DNS failure get the runbook's same mitigation; the diagnosis names
        # the cause and its real fix (test_jwks_causes_are_told_apart below).
        Case(
            "jwks-503:egress-blocked",
            "jwks-503",
            Scenario.JWKS_OUTAGE,
            ("PATCH", CORE_PATH),
            jwks_fails_inside,
            served_permissively,
            approve_permissive=True,
        ),
        Case(
            "jwks-503:dns-failure",
            "jwks-503",
            Scenario.JWKS_OUTAGE,
            ("PATCH", CORE_PATH),
            jwks_fails_inside,
            served_permissively,
            approve_permissive=True,
        ),
        Case(
            "ingress-503",
            "ingress-503",
            Scenario.INGRESS_503,
            ("PATCH", CLIENT_PATH),
            client_endpoints_empty,
            client_endpoints_back,
        ),
        Case(
            "ingress-503:ingress-controller-down",
            "ingress-controller-down",
            Scenario.INGRESS_503,
            ("PATCH", CONTROLLER_PATH),
            controller_crashes,
            controller_back,
        ),
        Case(
            "postgres-down",
            "postgres-down",
            Scenario.STATEFUL_FAILOVER,
            ("DELETE", f"/api/v1/namespaces/{NS}/pods/postgres-0"),
            postgres_crashes,
            postgres_back,
            approve_postgres_delete=True,
        ),
        Case(
            "redis-down",
            "redis-down",
            Scenario.STATEFUL_FAILOVER,
            ("DELETE", f"/api/v1/namespaces/{NS}/pods/redis-master-0"),
            redis_and_workers_crash,
            redis_back,
        ),
    )
}


def inject(sandbox: SandboxServer, case: Case) -> None:
    injections.inject(sandbox.cluster, case.incident)
    settle(sandbox, lambda: case.showing(sandbox))
    sandbox.cluster.journal.clear()


def run_triage(
    alerts: str,
    *,
    apply: bool,
    approve_permissive: bool = False,
    approve_postgres_delete: bool = False,
) -> TriageOutcome:
    return triage(
        alerts=parse_alertmanager(alert_payload(alerts)),
        dry_run=not apply,
        approve_permissive=approve_permissive,
        approve_postgres_delete=approve_postgres_delete,
        approved_by="on-call (test)" if approve_permissive or approve_postgres_delete else "",
        verify=REHEARSAL,
    )


def writes(sandbox: SandboxServer, **kwargs: Any) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sandbox.cluster.journal.mutations(**kwargs)]


def assert_mitigated_once(sandbox: SandboxServer, case: Case, result: TriageOutcome) -> None:
    assert result.scenario is case.scenario, result.reason
    assert not result.escalate and not result.dry_run
    assert result.outcome is not None
    assert result.outcome.status is OutcomeStatus.MITIGATED, result.outcome.message
    assert result.outcome.verification and all(v.passed for v in result.outcome.verification)
    (change,) = result.outcome.changes
    assert change.status is ChangeStatus.APPLIED
    assert len(result.plan) == 1 and result.plan[0].startswith("applied: ")
    # The one change the runbook allows reached the sandbox, once, and nothing else did.
    assert writes(sandbox) == [case.mutation]
    assert case.healed(sandbox), f"{case.incident} is still there after the fix"


@pytest.mark.parametrize("incident", CASES)
def test_triage_applies_the_runbook_fix_once_and_the_incident_is_gone(
    sandbox: SandboxServer, incident: str
) -> None:
    case = CASES[incident]
    inject(sandbox, case)
    started = time.monotonic()

    result = run_triage(case.alerts, apply=True, **case.approvals)

    assert_mitigated_once(sandbox, case, result)
    assert result.model_dump(mode="json")["scenario"] == case.scenario.value
    assert time.monotonic() - started < 30
    if case.scenario is Scenario.JWKS_OUTAGE:
        assert result.outcome is not None and result.outcome.bypass is not None
        (follow_up,) = result.outcome.follow_ups
        assert follow_up.flow == "revert-auth-enforce" and follow_up.scheduled_flow_run_id
    if incident == "redis-down":  # the workers were a symptom: they come back with Redis
        settle(sandbox, lambda: workers_back(sandbox))


@pytest.mark.parametrize("incident", CASES)
def test_the_same_triage_as_a_dry_run_plans_and_changes_nothing(
    sandbox: SandboxServer, incident: str
) -> None:
    case = CASES[incident]
    inject(sandbox, case)

    result = run_triage(case.alerts, apply=False, **case.approvals)

    assert result.scenario is case.scenario and result.dry_run and not result.escalate
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.PLANNED
    (plan,) = result.outcome.changes
    assert plan.status is ChangeStatus.PLANNED
    assert result.plan == (f"planned: {plan.summary}",)
    assert writes(sandbox) == []
    # Only server-side dry runs of the very change it would make.
    assert set(writes(sandbox, include_dry_run=True)) <= {case.mutation}
    assert all(r.dry_run for r in sandbox.cluster.journal.mutations(include_dry_run=True))
    # Still there: its symptoms keep showing (some, like B's crashes, come and go as it flaps).
    settle(sandbox, lambda: case.showing(sandbox))
    if case.scenario is Scenario.HPA_THRASH:
        assert scale_up_window(sandbox) != 300


@pytest.mark.parametrize(
    ("incident", "cause"),
    [
        ("jwks-503:auth0-down", "Auth0 is down"),
        ("jwks-503:egress-blocked", "outbound 443 is blocked by a NetworkPolicy"),
        ("jwks-503:dns-failure", "DNS resolution fails inside the cluster"),
    ],
)
def test_jwks_causes_are_told_apart(sandbox: SandboxServer, incident: str, cause: str) -> None:
    injections.inject(sandbox.cluster, incident)
    sandbox.controllers.step()

    result = run_triage("jwks-503", apply=False, approve_permissive=True)

    assert result.scenario is Scenario.JWKS_OUTAGE
    assert result.outcome is not None and result.outcome.diagnosis is not None
    assert result.outcome.diagnosis.summary.startswith(cause)


# -- wrong branches -----------------------------------------------------------------------------


def test_a_single_crash_never_widens_the_hpa_even_when_the_alert_says_hpa(
    sandbox: SandboxServer,
) -> None:
    """Alerts are hints: the HPA alert does not make one crashing pod runbook B."""
    case = CASES["crashloop-single"]
    inject(sandbox, case)
    window = scale_up_window(sandbox)

    result = run_triage("hpa-thrash", apply=True)

    assert_mitigated_once(sandbox, case, result)
    assert writes(sandbox, path="horizontalpodautoscalers") == []
    assert scale_up_window(sandbox) == window


def test_a_redis_outage_never_restarts_the_crashing_workers(sandbox: SandboxServer) -> None:
    """The alerts name the crashing workers; triage checks the platform first and fixes Redis."""
    case = CASES["redis-down"]
    inject(sandbox, case)
    workers = {p["metadata"]["uid"] for p in pods(sandbox, NS, f"app={WORKER}")}

    result = run_triage("redis-down-worker-crashes", apply=True)

    assert_mitigated_once(sandbox, case, result)
    assert not any(WORKER in path for _, path in writes(sandbox, include_dry_run=True))
    settle(sandbox, lambda: workers_back(sandbox))
    # The same worker pods recovered on their own: none was deleted or replaced.
    assert {p["metadata"]["uid"] for p in pods(sandbox, NS, f"app={WORKER}")} == workers


@pytest.mark.parametrize("through", ["store", "api"])
def test_the_permissive_flip_never_happens_when_the_operator_ui_is_not_firewalled(
    sandbox: SandboxServer, through: str
) -> None:
    case = CASES["jwks-503:auth0-down"]
    inject(sandbox, case)
    open_operator_ui(sandbox, through)
    sandbox.cluster.journal.clear()

    result = run_triage(case.alerts, apply=True, approve_permissive=True)

    assert result.scenario is Scenario.JWKS_OUTAGE and result.escalate
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.ESCALATED
    assert result.outcome.diagnosis is not None
    assert "not firewalled" in result.outcome.diagnosis.summary
    assert result.outcome.bypass is None and result.outcome.follow_ups == ()
    assert writes(sandbox, include_dry_run=True) == []
    assert still_enforcing(sandbox)


FIREWALL = "nginx.ingress.kubernetes.io/whitelist-source-range"


def open_operator_ui(sandbox: SandboxServer, through: str) -> None:
    """Someone removed the operator UI's source-range allowlist."""
    if through == "store":

        def drop(ingress: dict[str, Any]) -> None:
            ingress["metadata"]["annotations"].pop(FIREWALL, None)

        sandbox.cluster.store.update(INGRESS, ADMIN_NS, "alphaswarm-cp", drop)
        return
    response = httpx.patch(
        f"{sandbox.url}/apis/networking.k8s.io/v1/namespaces/{ADMIN_NS}/ingresses/alphaswarm-cp",
        json={"metadata": {"annotations": {FIREWALL: None}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert FIREWALL not in (response.json()["metadata"].get("annotations") or {})


# -- faults ---------------------------------------------------------------------------------------

FAULTY = [
    "crashloop-single",
    "hpa-thrash",
    "jwks-503:auth0-down",
    "ingress-503",
    "ingress-503:ingress-controller-down",
    "postgres-down",
    "redis-down",
]


@pytest.mark.parametrize("incident", FAULTY)
def test_with_one_request_in_ten_failing_or_slow_each_fix_is_applied_exactly_once(
    sandbox: SandboxServer, incident: str
) -> None:
    case = CASES[incident]
    inject(sandbox, case)
    fail_or_slow_one_request_in_ten(sandbox, seed=FAULTY.index(incident) + 11)

    result = run_triage(case.alerts, apply=True, **case.approvals)

    assert_mitigated_once(sandbox, case, result)
    answered = [r.status for r in sandbox.cluster.journal.requests()]
    assert 503 in answered, "no fault was injected: the test proves nothing"
    # Every attempt of the fix that the faults turned away is in the journal; one took effect.
    attempts = sandbox.cluster.journal.requests(
        method=case.mutation[0], path=case.mutation[1] + "$"
    )
    assert sum(1 for r in attempts if not r.dry_run and 200 <= r.status < 300) == 1
