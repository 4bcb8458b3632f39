"""Least privilege, derived from the sandbox: infra/rbac.yaml grants nothing the runbook never
uses, and every verb it grants is one a flow needs.

Every flow test already runs as the project's service account against infra/rbac.yaml
(tests/flows/conftest.py), so a verb missing from the file is a flow failing on the 403 a cluster
would answer. This module runs one representative flow per scenario in one process (A, B, D,
E, F through triage; A in alphaswarm-admin; C's scale; the health sweep; the diagnostics
snapshot), keeps the sandbox's authorization decisions, and then:

- every (API group, resource, verb) of every grant, where it is granted, was used by a request;
- removing any verb of any rule from a copy of the file turns a request those runs made into a
  403, with the message a cluster would answer (no flow re-runs: the recorded requests are
  authorized again).

The check tests need the runs before them in the same process: `xdist_group` keeps the module on
one worker, in order; run without them, they fail (a check that did not run is not a pass).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from prefect import flow

from flows.diagnostics import collect_diagnostics
from flows.health_sweep import health_sweep
from flows.triage import triage
from sandbox import injections
from sandbox.rbac import Attributes, Decision, Policy, forbidden
from sandbox.server import SandboxServer
from sandbox.symptoms import showing
from tasks.changes.models import ChangeStatus
from tasks.changes.mutations import scale_deployment
from tasks.models.alerts import parse_alertmanager
from tasks.models.diagnosis import Scenario
from tests.flows.conftest import RBAC_FILE, SERVICE_ACCOUNT
from tests.flows.sandbox_settings import point_flows_at, rule_payload
from tests.flows.sandbox_state import settle
from tests.flows.test_triage_e2e import CASES, assert_mitigated_once, inject, run_triage

pytestmark = pytest.mark.xdist_group("least_privilege")


def _triage(incident: str) -> Callable[[SandboxServer], None]:
    def run(sandbox: SandboxServer) -> None:
        case = CASES[incident]
        inject(sandbox, case)
        assert_mitigated_once(sandbox, case, run_triage(case.alerts, apply=True, **case.approvals))

    return run


def _a_operator_ui(sandbox: SandboxServer) -> None:
    """A in alphaswarm-admin: the plan (a dry-run patch needs the patch verb too)."""
    injections.inject(sandbox.cluster, "cp-crashloop")
    settle(sandbox, lambda: showing(sandbox.cluster, "cp-crashloop"), timeout=20)
    alerts = parse_alertmanager(rule_payload(sandbox, "kube-pod-crashlooping-cp"))
    sandbox.cluster.journal.clear()
    assert triage(alerts=alerts, dry_run=True).scenario is Scenario.POD_CRASH
    writes = sandbox.cluster.journal.mutations(include_dry_run=True)
    assert [(r.method, r.path) for r in writes] == [
        ("PATCH", "/apis/apps/v1/namespaces/alphaswarm-admin/deployments/alphaswarm-cp")
    ]


@flow(name="least-privilege-scale-workers")
def _scale_workers(dry_run: bool) -> ChangeStatus:
    return scale_deployment("alphaswarm", "alphaswarm-worker", 3, dry_run=dry_run).status


def _c_scale(sandbox: SandboxServer) -> None:
    """C's Kubernetes side: its dry-run plan, and the scale it falls back on when the control
    plane refuses (the queue itself needs real Celery: tests/flows/test_queue_backlog.py)."""
    assert _scale_workers(dry_run=True) is ChangeStatus.PLANNED
    assert _scale_workers(dry_run=False) is ChangeStatus.APPLIED


def _sweep(sandbox: SandboxServer) -> None:
    assert health_sweep().healthy


def _diagnostics(sandbox: SandboxServer) -> None:
    assert collect_diagnostics().problems == ()


RUNS: dict[str, Callable[[SandboxServer], None]] = {
    "A pod crash": _triage("crashloop-single"),
    "A operator UI": _a_operator_ui,
    "B hpa thrash": _triage("hpa-thrash"),
    "C scale workers": _c_scale,
    "D jwks egress blocked": _triage("jwks-503:egress-blocked"),
    "E backend": _triage("ingress-503"),
    "E controller": _triage("ingress-503:ingress-controller-down"),
    "F postgres": _triage("postgres-down"),
    "health sweep": _sweep,
    "diagnostics": _diagnostics,
}
# What each run asked the authorizer, as the service account (filled in by the runs below).
USED: dict[str, list[Decision]] = {}


@pytest.mark.parametrize("run", RUNS)
def test_a_representative_run_is_authorized_as_the_service_account(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, run: str
) -> None:
    point_flows_at(sandbox, monkeypatch)
    RUNS[run](sandbox)
    authorizer = sandbox.authorizer
    assert authorizer is not None, "the flow tests' sandbox must enforce infra/rbac.yaml"
    decisions = authorizer.decisions()
    assert [forbidden(d.attributes).message for d in decisions if not d.allowed] == []
    # The flows authenticated: no Kubernetes API request of theirs went without the token.
    anonymous = [d.attributes for d in authorizer.unchecked() if d.attributes.resource_request]
    assert [f"{a.verb} {a.path}" for a in anonymous] == []
    USED[run] = decisions


@pytest.fixture
def used() -> Iterator[list[Attributes]]:
    missing = sorted(set(RUNS) - set(USED))
    if missing:
        pytest.fail(f"needs the representative runs in this process first: {missing}")
    yield [d.attributes for run in RUNS for d in USED[run]]


def _documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if isinstance(d, dict)]


def _grants_of_the_service_account() -> list[tuple[str, str, str, str]]:
    """(grant, API group, resource, verb) for every single permission the file hands out."""
    policy = Policy.from_documents(_documents()).for_user(SERVICE_ACCOUNT)
    return [
        (str(grant), group, resource, verb)
        for grant in policy.grants
        for group in sorted(grant.rule.api_groups)
        for resource in sorted(grant.rule.resources)
        for verb in sorted(grant.rule.verbs)
    ]


def _rule_verbs() -> list[tuple[int, int, str]]:
    """(document, rule, verb) for every verb of every rule of every role in the file."""
    return [
        (i, j, verb)
        for i, doc in enumerate(_documents())
        if doc.get("kind") in {"Role", "ClusterRole"}
        for j, rule in enumerate(doc.get("rules") or ())
        for verb in rule.get("verbs") or ()
    ]


def _rule_id(case: tuple[int, int, str]) -> str:
    i, j, verb = case
    doc = _documents()[i]
    meta = doc["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    rule = doc["rules"][j]
    return f"{doc['kind']} {where}{meta['name']} {verb} {'+'.join(rule['resources'])}"


def test_the_service_account_is_granted_something() -> None:
    assert _grants_of_the_service_account(), f"{RBAC_FILE} grants {SERVICE_ACCOUNT} nothing"


@pytest.mark.parametrize(
    "grant", _grants_of_the_service_account(), ids=lambda g: f"{g[3]} {g[2]} {g[0]}"
)
def test_every_grant_was_used_where_it_is_granted(
    used: list[Attributes], grant: tuple[str, str, str, str]
) -> None:
    name, group, resource, verb = grant
    policy = Policy.from_documents(_documents()).for_user(SERVICE_ACCOUNT)
    (found,) = [g for g in policy.grants if str(g) == name]
    hits = [
        a
        for a in used
        if (a.group, a.full_resource, a.verb) == (group, resource, verb)
        and found.allows(a)  # where the grant applies: its binding's namespace
    ]
    assert hits, (
        f"{name} grants {verb} on {resource!r} (API group {group!r}) but no representative run"
        " used it: remove it from infra/rbac.yaml, or add the run that needs it to RUNS"
    )


@pytest.mark.parametrize("case", _rule_verbs(), ids=_rule_id)
def test_removing_the_verb_forbids_a_request_the_flows_made(
    used: list[Attributes], case: tuple[int, int, str]
) -> None:
    i, j, verb = case
    docs = copy.deepcopy(_documents())
    rule = docs[i]["rules"][j]
    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    before = Policy.from_documents(_documents())
    after = Policy.from_documents(docs)
    now_forbidden = [
        a for a in used if before.allowing(a) is not None and after.allowing(a) is None
    ]
    assert now_forbidden, (
        f"without {verb!r} in {_rule_id(case)} every request of the representative runs is"
        " still allowed: the verb is unused (or granted twice)"
    )
    # What the flow would get from a cluster, e.g. `deployments.apps "x" is forbidden: User ...`.
    message = forbidden(now_forbidden[0]).message
    assert f'User "{SERVICE_ACCOUNT}" cannot {verb} resource' in message
