"""Conditions a real cluster has and the plain sandbox does not, chosen by name when it is seeded.

An incident breaks something; a condition is how the cluster is built or behaves all along, and
it changes what the runbook's probes see without anything being broken. Each one composes with
every incident (only postgres-down refuses managed-postgres: there is no pod to break) and is
documented like an incident: the symptom an operator meets, the right way to read or handle it,
and the wrong conclusions it invites.

- `managed-postgres`: Postgres is a managed database (RDS) outside the cluster. No postgres
  StatefulSet, pod or PVC; the `postgres` Service is an ExternalName for the RDS endpoint; the
  DATABASE_URL values point there; the core egress policy allows 5432 to the VPC's database
  subnet. Runs list and pg_isready answer as the managed database is up.
- `no-curl`: the core image (alphaswarm-core and alphaswarm-worker pods) ships no curl, as slim
  images do: `kubectl exec ... -- curl ...` fails the way the container runtime fails for any
  missing binary. The app's own JWKS fetch and its `jwks_unreachable` lines are unaffected.
- `running-between-crashes`: crash-looping containers run for 20 ticks before each crash (a pod
  that dies after 30 s of work) and the back-off stays short, so a pod that crash-loops is seen
  Running most of the time, Ready too if it has no readiness probe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sandbox.behaviour import CrashCycle
from sandbox.cluster import SandboxCluster
from sandbox.resources import POD
from sandbox.runtime import ExecResult, executable_not_found
from sandbox.topology import Layout, seed

RDS_HOST = "alphaswarm.cluster-c1x2.eu-west-1.rds.amazonaws.com"
RDS_SUBNET = "10.0.64.0/20"  # the VPC's database subnet, where the RDS instance's ENIs live
CORE_IMAGE = "ghcr.io/alphaswarm/core"
RUN_BETWEEN_CRASHES = CrashCycle(run_ticks=20, max_backoff_ticks=2)


class UnknownCondition(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown condition {self.name!r}; known: {', '.join(names())}"


@dataclass(frozen=True)
class Condition:
    name: str
    summary: str  # one line for listings
    symptom: str  # what an operator running the runbook meets
    right: str  # how to read or handle it
    wrong: tuple[str, ...]  # conclusions or actions it invites that are wrong
    # The seeded topology, changed (before seeding); the running cluster, changed (after).
    shape: Callable[[Layout], Layout] = lambda layout: layout
    apply: Callable[[SandboxCluster], None] = lambda cluster: None


def _managed_postgres(layout: Layout) -> Layout:
    url = f"postgresql://alphaswarm@{RDS_HOST}:5432/alphaswarm?sslmode=require"
    services = tuple(
        replace(s, type="ExternalName", selector={}, cluster_ip="", external_name=RDS_HOST)
        if s.name == "postgres"
        else s
        for s in layout.services
    )
    return replace(
        layout.with_env("DATABASE_URL", url),
        statefulsets=tuple(w for w in layout.statefulsets if w.name != "postgres"),
        services=services,
        external_postgres_cidr=RDS_SUBNET,
    )


def _no_curl(cluster: SandboxCluster) -> None:
    def answer(namespace: str, pod_name: str, container: str, argv: list[str]) -> ExecResult | None:
        if not argv or argv[0].rsplit("/", 1)[-1] != "curl":
            return None
        pod = cluster.store.get(POD, namespace, pod_name)
        images = [c["image"] for c in (pod or {}).get("spec", {}).get("containers", [])]
        if not any(i.rsplit(":", 1)[0] == CORE_IMAGE for i in images):
            return None
        return executable_not_found(argv[0])

    cluster.runtime.add_exec_handler(answer, first=True)


def _running_between_crashes(cluster: SandboxCluster) -> None:
    cluster.behaviour.crash_cycle = RUN_BETWEEN_CRASHES


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition(
            "managed-postgres",
            "Postgres is a managed database outside the cluster (RDS), not a pod",
            "no postgres StatefulSet, pod or PVC; `kubectl get svc postgres` is an ExternalName "
            f"for {RDS_HOST}; `delete pod -l app=postgres` finds nothing",
            "treat a database failure as the provider's (its console, status page, failover); "
            "judge the app's connection to it from the app's logs and `runs list`",
            (
                "`kubectl -n alphaswarm delete pod -l app=postgres` (runbook F's step for an "
                "in-cluster Postgres): no resources found, nothing restarts",
                "reading the missing postgres pod as Postgres being down",
            ),
            shape=_managed_postgres,
        ),
        Condition(
            "no-curl",
            "the core image has no curl: `kubectl exec ... -- curl` cannot run",
            "`kubectl exec deploy/alphaswarm-core -- curl ...` fails: OCI runtime exec failed "
            '... exec: "curl": executable file not found in $PATH, exit 126',
            "take the failure as 'no probe from inside the pod', not as an answer about JWKS: "
            "read the core log's jwks_unreachable lines, probe JWKS from outside, or run curl "
            "from a debug container (kubectl debug --image=curlimages/curl)",
            (
                "reading the exec failure as JWKS unreachable (or as reachable) from the pod",
                "restarting the core pods to 'fix' the exec",
            ),
            apply=_no_curl,
        ),
        Condition(
            "running-between-crashes",
            "crash-looping pods run a while before each crash, so they are mostly Running",
            "a crash-looping pod shows STATUS Running (Ready, without a readiness probe) at most "
            "instants, with a growing RESTARTS count, lastState.terminated holding the last "
            "crash, BackOff events; Error or CrashLoopBackOff only briefly",
            "judge a pod by its restarts, lastState and events over time, not by one look at "
            "STATUS; after a fix, wait for no new crash, not for one Running sample",
            (
                "calling a crash-looping pod healthy because it is Running when looked at",
                "calling an incident mitigated on one Running sample after the fix",
            ),
            apply=_running_between_crashes,
        ),
    )
}


def names() -> list[str]:
    return list(CONDITIONS)


def resolve(name: str) -> Condition:
    if name not in CONDITIONS:
        raise UnknownCondition(name)
    return CONDITIONS[name]


def seed_with(cluster: SandboxCluster, conditions: Iterable[str] = ()) -> None:
    """Seed the AlphaSwarm topology under the named conditions (in the order given)."""
    chosen = [resolve(name) for name in dict.fromkeys(conditions)]
    layout = Layout()
    for condition in chosen:
        layout = condition.shape(layout)
    seed(cluster, layout)
    for condition in chosen:
        condition.apply(cluster)
    cluster.conditions = tuple(c.name for c in chosen)
