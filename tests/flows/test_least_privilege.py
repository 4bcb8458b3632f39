"""Least privilege, derived from the sandbox: infra/rbac.yaml grants nothing the runbook never
uses, and every verb it grants is one a flow needs.

Every flow test already runs as the project's service account against infra/rbac.yaml
(tests/flows/conftest.py), so a verb missing from the file is a flow failing on the 403 a cluster
would answer. This module runs one representative flow per scenario in one process (A, B, D,
E, F through triage; A in alphaswarm-admin; C's scale; the health sweep; the diagnostics
snapshot; B's and D's reverts; F's Redis branch), keeps the sandbox's authorization
decisions, and then:

- every (API group, resource, verb) of every grant, where it is granted, was used by a request;
- removing any verb of any rule, or any name of a rule's resourceNames, from a copy of the file
  turns a request those runs made into a 403, with the message a cluster would answer (no flow
  re-runs: the recorded requests are authorized again);
- and the file refuses what the runbook never does, over HTTP as the service account: a write
  to a Deployment it does not name, any write to the project's own server, worker and intake
  in alphaswarm-admin, pod reads outside the runbook's namespaces.

The check tests need the runs before them in the same process: `xdist_group` keeps the module on
one worker, in order; run without them, they fail (a check that did not run is not a pass).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import yaml
from prefect import flow, get_client
from sqlmodel import select

from flows.diagnostics import collect_diagnostics
from flows.health_sweep import health_sweep
from flows.pod_crash import remediate_pod_crash
from flows.put_back import put_back_action
from flows.revert_auth_enforce import revert_auth_enforce
from flows.triage import triage
from sandbox import injections
from sandbox.rbac import (
    KUBECONFIG_TOKEN,
    Attributes,
    Decision,
    Policy,
    forbidden,
    request_attributes,
)
from sandbox.server import SandboxServer
from sandbox.symptoms import showing
from store.engine import session_for
from store.models import IncidentAction
from tasks.changes.models import ChangeRecord, ChangeStatus
from tasks.changes.mutations import restart_deployment, scale_deployment
from tasks.models.alerts import parse_alertmanager
from tasks.models.diagnosis import Scenario
from tasks.settings import Settings
from tests.flows.conftest import RBAC_FILE, SERVICE_ACCOUNT
from tests.flows.sandbox_settings import point_flows_at, rule_payload
from tests.flows.sandbox_state import settle
from tests.flows.test_incident_records import the_only_incident
from tests.flows.test_triage_e2e import (
    CASES,
    assert_mitigated_once,
    auth_enforce,
    inject,
    run_triage,
)

pytestmark = pytest.mark.xdist_group("least_privilege")


def _triage(incident: str) -> Callable[[SandboxServer], None]:
    def run(sandbox: SandboxServer) -> None:
        _mitigate(sandbox, incident)

    return run


def _mitigate(sandbox: SandboxServer, incident: str) -> ChangeRecord:
    """Triage mitigates `incident` with the one change the runbook allows; that change."""
    case = CASES[incident]
    inject(sandbox, case)
    result = run_triage(case.alerts, apply=True, **case.approvals)
    assert_mitigated_once(sandbox, case, result)
    assert result.outcome is not None
    (change,) = result.outcome.changes
    return change


def _b_put_back(sandbox: SandboxServer) -> None:
    """B, then `remediate revert ACTION_ID`: the HPA's window written back through the gate."""
    change = _mitigate(sandbox, "hpa-thrash")
    with session_for(Settings().store.url.get_secret_value()) as session:
        row = session.exec(
            select(IncidentAction).where(IncidentAction.change_key == change.key)
        ).one()
    assert row.id is not None
    assert put_back_action(row.id, dry_run=False).status is ChangeStatus.APPLIED


def _d_revert(sandbox: SandboxServer) -> None:
    """D, then the `revert-auth-enforce` run the flip scheduled, once Auth0 is back (run here
    in-process with its parameters; tests/flows/test_scheduled_revert.py serves it)."""
    _mitigate(sandbox, "jwks-503:auth0-down")
    injections.heal(sandbox.cluster)
    (p1,) = [
        f
        for f in the_only_incident(Settings().store.url.get_secret_value()).follow_ups
        if f.priority == "P1"
    ]
    with get_client(sync_client=True) as client:
        scheduled = client.read_flow_run(UUID(p1.scheduled_flow_run_id or ""))
    outcome = revert_auth_enforce(**{**scheduled.parameters, "healthy_for_seconds": 1})
    assert auth_enforce(sandbox) == "enforce", outcome.message


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


def _a_ingress_controller(sandbox: SandboxServer) -> None:
    """A run on the ingress controller's Deployment (the one restart the Role names in
    ingress-nginx): its probe describes the crashing pod and reads its previous log, its plan
    is a dry-run patch. Triage sends this crash to E; A is what an operator starts by hand."""
    injections.inject(sandbox.cluster, "ingress-503:ingress-controller-down")
    settle(sandbox, lambda: showing(sandbox.cluster, "ingress-503:ingress-controller-down"))
    outcome = remediate_pod_crash(
        namespace="ingress-nginx", deployment="ingress-nginx-controller", dry_run=True
    )
    assert [c.status for c in outcome.changes] == [ChangeStatus.PLANNED], outcome.message


@flow(name="least-privilege-scale-workers")
def _scale_workers(dry_run: bool) -> ChangeStatus:
    return scale_deployment("alphaswarm", "alphaswarm-worker", 3, dry_run=dry_run).status


@flow(name="least-privilege-restart-workers")
def _restart_workers() -> ChangeStatus:
    return restart_deployment("alphaswarm", "alphaswarm-worker", dry_run=True).status


def _a_workers(sandbox: SandboxServer) -> None:
    """A (or B's several crashing pods) when the crash-looping pods are the workers': triage
    restarts the crashing pod's Deployment, here its plan (a dry-run patch needs the verb)."""
    assert _restart_workers() is ChangeStatus.PLANNED


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
    "A workers": _a_workers,
    "A ingress controller": _a_ingress_controller,
    "B hpa thrash": _triage("hpa-thrash"),
    "C scale workers": _c_scale,
    "D jwks egress blocked": _triage("jwks-503:egress-blocked"),
    "E backend": _triage("ingress-503"),
    "E controller": _triage("ingress-503:ingress-controller-down"),
    "F postgres": _triage("postgres-down"),
    "F redis": _triage("redis-down"),
    "B put back": _b_put_back,
    "D revert": _d_revert,
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


def _rule_names() -> list[tuple[int, int, str]]:
    """(document, rule, name) for every name of every rule's resourceNames."""
    return [
        (i, j, name)
        for i, doc in enumerate(_documents())
        if doc.get("kind") in {"Role", "ClusterRole"}
        for j, rule in enumerate(doc.get("rules") or ())
        for name in rule.get("resourceNames") or ()
    ]


@pytest.mark.parametrize("case", _rule_names(), ids=lambda c: f"{_rule_id((c[0], c[1], c[2]))}")
def test_removing_a_resource_name_forbids_a_request_the_flows_made(
    used: list[Attributes], case: tuple[int, int, str]
) -> None:
    i, j, name = case
    docs = copy.deepcopy(_documents())
    rule = docs[i]["rules"][j]
    # An empty list would allow every name: the last one is replaced by a name nothing has.
    rule["resourceNames"] = [n for n in rule["resourceNames"] if n != name] or ["-"]
    before, after = Policy.from_documents(_documents()), Policy.from_documents(docs)
    now_forbidden = [
        a for a in used if before.allowing(a) is not None and after.allowing(a) is None
    ]
    assert now_forbidden, f"{name!r} in {_rule_id(case)}: no representative run used it"
    assert {a.name for a in now_forbidden} == {name}


def test_every_write_names_its_objects() -> None:
    """A write without resourceNames could change anything of its kind in its namespace. The
    only exception is pods/exec (a Deployment's pods have random names: see infra/rbac.yaml)."""
    reads = {"get", "list", "watch"}
    unnamed = [
        _rule_id((i, j, "+".join(rule["verbs"])))
        for i, doc in enumerate(_documents())
        if doc.get("kind") in {"Role", "ClusterRole"}
        for j, rule in enumerate(doc.get("rules") or ())
        if set(rule["verbs"]) - reads
        and not rule.get("resourceNames")
        and rule["resources"] != ["pods/exec"]
    ]
    assert unnamed == []


# -- what the file refuses ---------------------------------------------------------------------

APPS = "/apis/apps/v1/namespaces"
CORE_API = "/api/v1/namespaces"
# The objects this project runs as in alphaswarm-admin (infra/helm, infra/intake,
# infra/work-pool): the flows' account may not change any of them.
OWN = ("prefect-server", "prefect-worker", "alphaswarm-remediate-intake")

REFUSED: dict[str, tuple[str, str, dict[str, str]]] = {
    # alphaswarm: only the Deployments, the HPA and the pods the runbook names
    "patch a Deployment it does not name": ("PATCH", f"{APPS}/alphaswarm/deployments/other", {}),
    "replace alphaswarm-core": ("PUT", f"{APPS}/alphaswarm/deployments/alphaswarm-core", {}),
    "delete alphaswarm-core": ("DELETE", f"{APPS}/alphaswarm/deployments/alphaswarm-core", {}),
    "create a Deployment": ("POST", f"{APPS}/alphaswarm/deployments", {}),
    "scale alphaswarm-core": ("PATCH", f"{APPS}/alphaswarm/deployments/alphaswarm-core/scale", {}),
    "patch another HPA": (
        "PATCH",
        "/apis/autoscaling/v2/namespaces/alphaswarm/horizontalpodautoscalers/other",
        {},
    ),
    "delete an API pod": ("DELETE", f"{CORE_API}/alphaswarm/pods/alphaswarm-core-abc-12345", {}),
    "delete every pod": ("DELETE", f"{CORE_API}/alphaswarm/pods", {}),
    "delete the Postgres volume": (
        "DELETE",
        f"{CORE_API}/alphaswarm/persistentvolumeclaims/data-postgres-0",
        {},
    ),
    # alphaswarm-admin: the project's own server, worker and intake, and what they run on
    **{
        f"{verb} {name}": (method, f"{APPS}/alphaswarm-admin/deployments/{name}{sub}", {})
        for name in OWN
        for verb, method, sub in (
            ("patch", "PATCH", ""),
            ("replace", "PUT", ""),
            ("delete", "DELETE", ""),
            ("scale", "PATCH", "/scale"),
        )
    },
    "delete a Prefect server pod": (
        "DELETE",
        f"{CORE_API}/alphaswarm-admin/pods/prefect-server-abc-12345",
        {},
    ),
    "patch the intake's Service": (
        "PATCH",
        f"{CORE_API}/alphaswarm-admin/services/alphaswarm-remediate-intake",
        {},
    ),
    "patch the intake's NetworkPolicy": (
        "PATCH",
        "/apis/networking.k8s.io/v1/namespaces/alphaswarm-admin/networkpolicies/"
        "alphaswarm-remediate-intake",
        {},
    ),
    "replace the tokens' Secret": (
        "PUT",
        f"{CORE_API}/alphaswarm-admin/secrets/alphaswarm-remediate",
        {},
    ),
    "read the tokens' Secret": (
        "GET",
        f"{CORE_API}/alphaswarm-admin/secrets/alphaswarm-remediate",
        {},
    ),
    "patch the job template": (
        "PATCH",
        f"{CORE_API}/alphaswarm-admin/configmaps/alphaswarm-remediate-base-job-template",
        {},
    ),
    "create a Job": ("POST", "/apis/batch/v1/namespaces/alphaswarm-admin/jobs", {}),
    "bind itself a Role": (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/alphaswarm-admin/rolebindings",
        {},
    ),
    "exec into the Prefect server": (
        "GET",
        f"{CORE_API}/alphaswarm-admin/pods/prefect-server-abc-12345/exec",
        {"command": "sh"},
    ),
    # pods, logs and exec outside the runbook's namespaces
    "list pods in every namespace": ("GET", "/api/v1/pods", {}),
    "list pods in kube-system": ("GET", f"{CORE_API}/kube-system/pods", {}),
    "read a pod in monitoring": ("GET", f"{CORE_API}/monitoring/pods/prometheus-0", {}),
    "read a log in kube-system": ("GET", f"{CORE_API}/kube-system/pods/coredns-1/log", {}),
    "exec in ingress-nginx": (
        "GET",
        f"{CORE_API}/ingress-nginx/pods/ingress-nginx-controller-abc-12345/exec",
        {"command": "sh"},
    ),
}


@pytest.mark.parametrize("request_", REFUSED.values(), ids=REFUSED.keys())
def test_the_file_refuses_what_the_runbook_never_does(
    request_: tuple[str, str, dict[str, str]],
) -> None:
    method, path, query = request_
    policy = Policy.from_documents(_documents())
    attributes = request_attributes(SERVICE_ACCOUNT, method, path, query)
    assert policy.allowing(attributes) is None, policy.allowing(attributes)


@pytest.mark.ungated_writes("sends refused writes and execs over HTTP itself; asserts none landed")
def test_the_sandbox_answers_each_refusal_with_the_clusters_403(sandbox: SandboxServer) -> None:
    """The same requests over HTTP with the flows' token: each a 403, and nothing changed."""
    headers = {"Authorization": f"Bearer {KUBECONFIG_TOKEN}"}
    answers = {}
    for what, (method, path, query) in REFUSED.items():
        body = {} if method in {"PATCH", "PUT", "POST"} else None
        patch = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        response = httpx.request(
            method,
            sandbox.url + path,
            params=query,
            json=body,
            headers={**headers, **patch},
            trust_env=False,
        )
        answers[what] = (response.status_code, response.json().get("reason"))
    assert {w: a for w, a in answers.items() if a != (403, "Forbidden")} == {}
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []
