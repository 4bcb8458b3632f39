"""Runbook D, E, F decisions: every branch is a row."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.adapters.cluster import (
    EndpointAddress,
    Endpoints,
    Ingress,
    LabelSelector,
    NetworkPolicy,
    PersistentVolumeClaim,
    PolicyRule,
    StatefulSet,
)
from tasks.adapters.http_endpoints import JwksAnswer
from tasks.diagnoses.findings import jwks_finding
from tasks.diagnoses.platform import (
    diagnose_ingress,
    diagnose_jwks,
    diagnose_stateful,
    egress_allows_https,
    operator_ui_firewall,
)
from tasks.models.diagnosis import Action, Scenario
from tasks.models.snapshots import (
    ExecCurl,
    IngressSnapshot,
    JwksSnapshot,
    ReadinessFailure,
    ServiceEndpoints,
    StatefulSnapshot,
)
from tasks.settings import Environment
from tests.unit.factories import NOW, crashing_pod, deployment, pod

URL = "https://your-tenant.us.auth0.com/.well-known/jwks.json"
HERE_OK = JwksAnswer(url=URL, status=200, keys=2)
HERE_503 = JwksAnswer(url=URL, status=503, failure="http")
POD_OK = ExecCurl(pod="core-1", exit_code=0, keys=2)
POD_503 = ExecCurl(pod="core-1", exit_code=22, stderr="curl: (22) ... error: 503")
POD_DNS = ExecCurl(pod="core-1", exit_code=6, stderr="curl: (6) Could not resolve host: x")
POD_TIMEOUT = ExecCurl(pod="core-1", exit_code=28, stderr="curl: (28) Failed to connect")


def policy(*rules: PolicyRule, types: tuple[str, ...] = ("Egress",)) -> NetworkPolicy:
    return NetworkPolicy(
        name="core-egress",
        namespace="alphaswarm",
        pod_selector=LabelSelector(match_labels={"app": "alphaswarm-core"}),
        policy_types=types,
        egress=rules,
    )


HTTPS_OUT = policy(PolicyRule(ports=("TCP/443",), peers=("ipBlock: 0.0.0.0/0",)))
DNS_ONLY = policy(PolicyRule(ports=("UDP/53", "TCP/53"), peers=("podSelector: k8s-app=kube-dns",)))
FIREWALLED = Ingress(
    name="alphaswarm-cp",
    namespace="alphaswarm-admin",
    annotations={"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"},
)
OPEN_UI = Ingress(name="alphaswarm-cp", namespace="alphaswarm-admin")


def jwks(**overrides: Any) -> JwksSnapshot:
    fields: dict[str, Any] = {
        "observed_at": NOW,
        "namespace": "alphaswarm",
        "deployment_name": "alphaswarm-core",
        "from_here": HERE_503,
        "from_pod": POD_503,
        "egress_policies": (HTTPS_OUT,),
        "operator_ingress": FIREWALLED,
        "auth_enforce": "strict",
    }
    return JwksSnapshot(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("snapshot", "action", "says"),
    [
        (jwks(), Action.SET_AUTH_PERMISSIVE, "Auth0 is down"),
        (jwks(from_here=None), Action.SET_AUTH_PERMISSIVE, "Auth0 is down"),
        (jwks(from_pod=None), Action.SET_AUTH_PERMISSIVE, "Auth0 is down"),
        (jwks(operator_ingress=OPEN_UI), Action.ESCALATE, "not firewalled"),
        (jwks(operator_ingress=None), Action.ESCALATE, "not firewalled"),
        (jwks(auth_enforce="permissive"), Action.NONE, "permissive already"),
        (jwks(from_here=HERE_OK, from_pod=POD_OK), Action.NONE, "healthy"),
        (jwks(from_here=HERE_OK, from_pod=POD_DNS), Action.SET_AUTH_PERMISSIVE, "DNS resolution"),
        (
            jwks(from_here=HERE_OK, from_pod=POD_DNS, operator_ingress=OPEN_UI),
            Action.ESCALATE,
            "not firewalled",
        ),
        (
            jwks(from_here=HERE_OK, from_pod=POD_TIMEOUT, egress_policies=(DNS_ONLY,)),
            Action.SET_AUTH_PERMISSIVE,
            "blocked by a NetworkPolicy",
        ),
        (
            jwks(from_here=HERE_OK, from_pod=POD_DNS, auth_enforce="permissive"),
            Action.NONE,
            "permissive already",
        ),
        (jwks(from_here=HERE_OK, from_pod=POD_TIMEOUT), Action.ESCALATE, "does not name"),
        (jwks(from_here=None, from_pod=None), Action.ESCALATE, "could not be probed"),
    ],
)
def test_diagnose_jwks(snapshot: JwksSnapshot, action: Action, says: str) -> None:
    found = diagnose_jwks(snapshot)
    assert found.action is action and found.scenario is Scenario.JWKS_OUTAGE
    assert says in found.summary
    if action is Action.SET_AUTH_PERMISSIVE:
        assert (found.variable, found.value) == ("ALPHASWARM_AUTH_ENFORCE", "permissive")


@pytest.mark.parametrize(
    ("snapshot", "fault"),
    [
        # One error answered here while the app's pod fetched the keys and logs nothing: a
        # blip (or a proxy of this process's own), not Auth0 down; D would flip a hard rule.
        (jwks(from_pod=POD_OK, log_read=True), False),
        # The app's symptom in its log, or its pod failing too: Auth0 is down for the app.
        (jwks(from_pod=POD_OK, symptom_lines=("jwks_unreachable: 503",)), True),
        (jwks(from_pod=POD_503), True),
        # No curl in the pod: the error answered here is the only word, and it counts.
        (jwks(from_pod=None, pod_error="no curl in the image"), True),
    ],
    ids=["here-only", "here-and-log", "here-and-pod", "here-no-curl"],
)
def test_an_error_answered_here_is_an_outage_unless_the_app_reaches_auth0(
    snapshot: JwksSnapshot, fault: bool
) -> None:
    finding = jwks_finding(snapshot)
    assert finding.fault is fault, finding
    assert any("HTTP 503" in line for line in finding.evidence)


@pytest.mark.parametrize(
    ("policies", "allowed"),
    [
        ((), True),
        ((HTTPS_OUT,), True),
        ((DNS_ONLY,), False),
        ((DNS_ONLY, HTTPS_OUT), True),
        ((policy(PolicyRule()),), True),  # an empty rule allows everything
        ((policy(PolicyRule(ports=("TCP/400-500",))),), True),
        ((policy(PolicyRule(ports=("TCP/443",), peers=("podSelector: app=x",))),), False),
        ((policy(types=("Ingress",)),), True),
    ],
)
def test_egress_allows_https(policies: tuple[NetworkPolicy, ...], allowed: bool) -> None:
    assert egress_allows_https(policies) is allowed


@pytest.mark.parametrize(
    ("ingress", "expected"),
    [
        (FIREWALLED, "10.0.0.0/8"),
        (OPEN_UI, None),
        (None, None),
        (
            Ingress(
                name="x",
                namespace="y",
                annotations={"nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0"},
            ),
            None,
        ),
    ],
)
def test_operator_ui_firewall(ingress: Ingress | None, expected: str | None) -> None:
    assert operator_ui_firewall(ingress) == expected


def endpoints(ready: int, not_ready: int = 0, name: str = "alphaswarm-client") -> Endpoints:
    addresses = [EndpointAddress(ip=f"10.0.0.{i}", ready=True) for i in range(ready)]
    addresses += [EndpointAddress(ip=f"10.0.1.{i}", ready=False) for i in range(not_ready)]
    return Endpoints(name=name, namespace="alphaswarm", addresses=tuple(addresses))


def service(
    ready: int, not_ready: int = 0, failures: tuple[str, ...] = (), name: str = "alphaswarm-client"
) -> ServiceEndpoints:
    return ServiceEndpoints(
        namespace="alphaswarm",
        service=name,
        selector={"app": name},
        deployments=(name,) if ready == 0 else (),
        endpoints=endpoints(ready, not_ready),
        readiness_failures=tuple(ReadinessFailure(pod="client-1", message=m) for m in failures),
    )


CP_OK = ServiceEndpoints(
    namespace="alphaswarm-admin", service="alphaswarm-cp", endpoints=endpoints(1, name="cp")
)


def ingress(**overrides: Any) -> IngressSnapshot:
    fields: dict[str, Any] = {
        "observed_at": NOW,
        "controller_namespace": "ingress-nginx",
        "controller_name": "ingress-nginx-controller",
        "controller": deployment("ingress-nginx-controller"),
        "controller_pods": (pod("ingress-nginx-controller-1"),),
        "services": (service(2), CP_OK),
    }
    return IngressSnapshot(**{**fields, **overrides})


READINESS_HTTP = ("Readiness probe failed: HTTP probe failed with statuscode: 500",)
READINESS_DB = ("Readiness probe failed: dial tcp postgres:5432: connection refused",)


@pytest.mark.parametrize(
    ("snapshot", "action", "scenario", "target"),
    [
        (ingress(), Action.NONE, Scenario.INGRESS_503, None),
        (
            ingress(controller_pods=(crashing_pod("ingress-nginx-controller-1"),)),
            Action.RESTART_DEPLOYMENT,
            Scenario.INGRESS_503,
            "ingress-nginx-controller",
        ),
        (
            ingress(controller_pods=()),
            Action.RESTART_DEPLOYMENT,
            Scenario.INGRESS_503,
            "ingress-nginx-controller",
        ),
        (
            ingress(controller=None, controller_pods=()),
            Action.ESCALATE,
            Scenario.INGRESS_503,
            "ingress-nginx-controller",
        ),
        (
            ingress(services=(service(0, 2, READINESS_HTTP), CP_OK)),
            Action.RESTART_DEPLOYMENT,
            Scenario.INGRESS_503,
            "alphaswarm-client",
        ),
        (
            ingress(services=(service(0, 2, READINESS_DB), CP_OK)),
            Action.REROUTE,
            Scenario.STATEFUL_FAILOVER,
            "alphaswarm-client",
        ),
        (
            ingress(services=(service(0, 2), CP_OK)),
            Action.ESCALATE,
            Scenario.INGRESS_503,
            "alphaswarm-client",
        ),
        (
            ingress(
                services=(
                    ServiceEndpoints(
                        namespace="alphaswarm", service="alphaswarm-client", endpoints=None
                    ),
                )
            ),
            Action.ESCALATE,
            Scenario.INGRESS_503,
            "alphaswarm-client",
        ),
    ],
)
def test_diagnose_ingress(
    snapshot: IngressSnapshot, action: Action, scenario: Scenario, target: str | None
) -> None:
    found = diagnose_ingress(snapshot)
    assert (found.action, found.scenario, found.name) == (action, scenario, target)


PVC_BOUND = PersistentVolumeClaim(name="postgres-data", namespace="alphaswarm", phase="Bound")
PVC_PENDING = PersistentVolumeClaim(name="postgres-data", namespace="alphaswarm", phase="Pending")
REDIS_STS = StatefulSet(name="redis-master", namespace="alphaswarm", replicas=1, ready_replicas=1)
PG_OK = pod("postgres-0", labels={"app": "postgres"})
PG_DOWN = crashing_pod("postgres-0", labels={"app": "postgres"})
REDIS_OK = pod("redis-master-0")
REDIS_DOWN = crashing_pod("redis-master-0")


def stateful(**overrides: Any) -> StatefulSnapshot:
    fields: dict[str, Any] = {
        "observed_at": NOW,
        "namespace": "alphaswarm",
        "postgres_selector": "app=postgres",
        "postgres_pods": (PG_OK,),
        "postgres_pvcs": (PVC_BOUND,),
        "redis_pod_name": "redis-master-0",
        "redis_pod": REDIS_OK,
        "redis_statefulset": REDIS_STS,
    }
    return StatefulSnapshot(**{**fields, **overrides})


DEV, PROD = Environment.DEV, Environment.PRODUCTION


@pytest.mark.parametrize(
    ("snapshot", "environment", "action", "says"),
    [
        (stateful(), DEV, Action.NONE, "ready"),
        (stateful(redis_pod=REDIS_DOWN), PROD, Action.DELETE_PODS, "StatefulSet brings it back"),
        (stateful(redis_pod=None), DEV, Action.DELETE_PODS, "Redis is down"),
        (stateful(redis_pod=REDIS_DOWN, redis_statefulset=None), DEV, Action.ESCALATE, "no "),
        (stateful(postgres_pods=(PG_DOWN,)), DEV, Action.DELETE_PODS, "data persists in the PVC"),
        (stateful(postgres_pods=(PG_DOWN,)), Environment.STAGING, Action.DELETE_PODS, "PVC"),
        (
            stateful(postgres_pods=(PG_DOWN,)),
            PROD,
            Action.ESCALATE,
            "migrate to a managed Postgres",
        ),
        # No pod at all is not "down": a managed Postgres has none.
        (stateful(postgres_pods=()), DEV, Action.NONE, "no pod here to judge"),
        (
            stateful(postgres_pods=(PG_DOWN,), postgres_pvcs=(PVC_PENDING,)),
            DEV,
            Action.ESCALATE,
            "not Bound",
        ),
        (stateful(postgres_pods=(PG_DOWN,), redis_pod=REDIS_DOWN), DEV, Action.ESCALATE, "both"),
        # REMEDIATE_ENVIRONMENT unset: fail closed, as production, and say so.
        (
            stateful(postgres_pods=(PG_DOWN,)),
            None,
            Action.ESCALATE,
            "REMEDIATE_ENVIRONMENT is not set: treated as production, the Postgres pod is not "
            "deleted",
        ),
        (stateful(redis_pod=REDIS_DOWN), None, Action.DELETE_PODS, "StatefulSet brings it back"),
    ],
)
def test_diagnose_stateful(
    snapshot: StatefulSnapshot, environment: Environment | None, action: Action, says: str
) -> None:
    found = diagnose_stateful(snapshot, environment)
    assert found.action is action and found.scenario is Scenario.STATEFUL_FAILOVER
    assert says in found.summary
    if action is Action.DELETE_PODS:
        assert (found.name, found.selector) in {("redis-master-0", None), (None, "app=postgres")}


def test_every_wedged_backend_is_restarted_not_only_the_first() -> None:
    """Both backends fail readiness: both Deployments (found through the Services' pods, not
    their names) are restarted, and their PDBs are evidence, never a veto on pods already
    down."""
    client = service(0, 2, READINESS_HTTP).model_copy(update={"deployments": ("client-web",)})
    cp = service(0, 1, READINESS_HTTP, name="alphaswarm-cp").model_copy(
        update={"namespace": "alphaswarm-admin", "deployments": ("control-plane",)}
    )
    found = diagnose_ingress(ingress(services=(client, cp)))
    assert found.action is Action.RESTART_DEPLOYMENT
    assert found.targets == (("alphaswarm", "client-web"), ("alphaswarm-admin", "control-plane"))
    assert any("PodDisruptionBudget" in e or "PDB" in e for e in found.evidence)


def test_empty_endpoints_behind_crash_looping_pods_are_not_an_ingress_restart() -> None:
    crashing = service(0, 1).model_copy(update={"crashing": ("alphaswarm-client-1",)})
    found = diagnose_ingress(ingress(services=(crashing, CP_OK)))
    assert found.action is Action.ESCALATE and "crash-loop" in found.summary
