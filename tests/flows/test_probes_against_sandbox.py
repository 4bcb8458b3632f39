"""The scenario probes read a healthy seeded sandbox, and each diagnosis then says: nothing to do.

`.fn()` runs the probe body without the engine: this pins the wiring (which reads, which
names), the flows' tests pin the engine behaviour.
"""

from __future__ import annotations

from sandbox.server import SandboxServer
from tasks.diagnoses.platform import diagnose_ingress, diagnose_jwks, diagnose_stateful
from tasks.diagnoses.workload import diagnose_hpa_thrash, diagnose_pod_crash
from tasks.models.diagnosis import Action
from tasks.probes.common import probe_common_diagnostics
from tasks.probes.platform import probe_ingress, probe_jwks, probe_stateful
from tasks.probes.workload import probe_crashing_pods, probe_hpa_decisions
from tasks.settings import Environment

NS, ADMIN = "alphaswarm", "alphaswarm-admin"
JWKS = "https://your-tenant.us.auth0.com/.well-known/jwks.json"


def test_healthy_sandbox_reads_as_healthy(sandbox: SandboxServer) -> None:
    crash = probe_crashing_pods.fn(NS, "alphaswarm-core")
    assert crash.pdb is not None and crash.pods
    assert diagnose_pod_crash(crash).action is Action.NONE
    hpa = probe_hpa_decisions.fn(NS, "alphaswarm-core", "alphaswarm-worker")
    assert hpa.hpa is not None and diagnose_hpa_thrash(hpa).action is Action.NONE
    jwks = probe_jwks.fn(
        NS,
        "alphaswarm-core",
        JWKS,
        ADMIN,
        "alphaswarm-cp",
        "ALPHASWARM_AUTH_ENFORCE",
        from_here=False,
    )
    assert jwks.from_pod is not None and jwks.from_pod.ok and jwks.operator_ingress is not None
    assert diagnose_jwks(jwks).action is Action.NONE
    ingress = probe_ingress.fn(
        "ingress-nginx",
        "ingress-nginx-controller",
        [(NS, "alphaswarm-client"), (ADMIN, "alphaswarm-cp")],
    )
    assert diagnose_ingress(ingress).action is Action.NONE, diagnose_ingress(ingress).evidence
    stateful = probe_stateful.fn(NS, "app=postgres", "redis-master-0")
    assert stateful.redis_statefulset is not None and stateful.postgres_pvcs
    assert diagnose_stateful(stateful, Environment.DEV).action is Action.NONE
    common = probe_common_diagnostics.fn()
    assert set(common.pods) == {NS, ADMIN} and common.top_cpu and common.recent_runs
    assert sandbox.cluster.journal.mutations() == []


def test_injected_jwks_outage_reads_as_auth0_down(sandbox: SandboxServer) -> None:
    sandbox.cluster.behaviour.jwks_status = 503
    jwks = probe_jwks.fn(
        NS,
        "alphaswarm-core",
        JWKS,
        ADMIN,
        "alphaswarm-cp",
        "ALPHASWARM_AUTH_ENFORCE",
        from_here=False,
    )
    assert diagnose_jwks(jwks).action is Action.SET_AUTH_PERMISSIVE
