"""Answers to the commands the runbook runs inside pods with `kubectl exec`.

Each answer is computed from the cluster at the moment of the call, so it tells the truth about
the simulated incident: `curl` of the JWKS URL follows `Behaviour.jwks_status`, `redis-cli`
(`sandbox.redis_cli`), `pg_isready`, celery and the runs ledger fail while no Redis or Postgres
pod serves, and `df -h` shows `Behaviour.volume_usage` for the pod's claims. A Postgres managed
outside the cluster (the `postgres` Service is an ExternalName, the `managed-postgres` condition)
is up: no incident of the sandbox can take it down.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.auth0 import JWKS_PATH, JWKS_URL
from sandbox.cluster import SandboxCluster
from sandbox.egress import curl_jwks_from_pod
from sandbox.redis_cli import redis_cli
from sandbox.resources import POD, SERVICE
from sandbox.runtime import ExecResult
from sandbox.volumes import psql

DB_NAMESPACE = "alphaswarm"  # where the `postgres` Service (and pod, if any) lives

Handler = Callable[[SandboxCluster, Mapping[str, Any], list[str]], ExecResult | None]


def _dependency_ready(cluster: SandboxCluster, namespace: str, app: str) -> bool:
    pods, _ = cluster.store.list(POD, namespace, labels=f"app={app}")
    return any(cluster.behaviour.serving(p) for p in pods)


def managed_postgres_host(cluster: SandboxCluster) -> str | None:
    """The external host the `postgres` Service names when Postgres is managed outside."""
    service = cluster.store.get(SERVICE, DB_NAMESPACE, "postgres")
    spec = (service or {}).get("spec") or {}
    return str(spec["externalName"]) if spec.get("type") == "ExternalName" else None


def postgres_up(cluster: SandboxCluster) -> bool:
    return managed_postgres_host(cluster) is not None or _dependency_ready(
        cluster, DB_NAMESPACE, "postgres"
    )


def _hostname(
    cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]
) -> ExecResult | None:
    if argv in (["hostname"], ["cat", "/etc/hostname"]):
        return ExecResult(stdout=pod["metadata"]["name"] + "\n")
    return None


def _env(cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    if argv not in (["env"], ["printenv"]):
        return None
    lines = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"HOSTNAME={pod['metadata']['name']}",
    ]
    for container in pod["spec"]["containers"][:1]:
        for var in container.get("env") or []:
            if "value" in var:
                lines.append(f"{var['name']}={var['value']}")
    lines += [
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_PORT=tcp://10.96.0.1:443",
        "HOME=/root",
    ]
    return ExecResult(stdout="\n".join(lines) + "\n")


def _df(cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    if argv[:1] != ["df"]:
        return None
    rows = [
        ("overlay", "95G", "31G", "64G", "33%", "/"),
        ("tmpfs", "64M", "0", "64M", "0%", "/dev"),
        ("/dev/root", "95G", "31G", "64G", "33%", "/etc/hosts"),
        ("shm", "64M", "0", "64M", "0%", "/dev/shm"),
    ]
    ns = pod["metadata"]["namespace"]
    mounts = {
        m["name"]: m["mountPath"]
        for c in pod["spec"]["containers"]
        for m in c.get("volumeMounts") or []
    }
    for i, volume in enumerate(pod["spec"].get("volumes") or []):
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim or volume["name"] not in mounts:
            continue
        used = cluster.behaviour.volume_usage.get((ns, claim), 41)
        used_g = round(9.8 * used / 100, 1)
        rows.append(
            (
                f"/dev/sd{'bcdefgh'[i % 7]}",
                "9.8G",
                f"{used_g}G",
                f"{round(9.8 - used_g, 1)}G",
                f"{used}%",
                mounts[volume["name"]],
            )
        )
    out = ["Filesystem      Size  Used Avail Use% Mounted on"]
    out += [f"{fs:<15} {size:>4} {u:>5} {a:>5} {p:>4} {m}" for fs, size, u, a, p, m in rows]
    return ExecResult(stdout="\n".join(out) + "\n")


def _curl(cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    # Auth0's URL, or the sandbox's own JWKS URL that `flow_env` hands the flows as Auth0's.
    if argv[:1] != ["curl"] or not any(a == JWKS_URL or a.endswith(JWKS_PATH) for a in argv):
        return None
    # DNS, NetworkPolicy egress and Auth0's own status, in the order a connection meets them.
    return curl_jwks_from_pod(cluster, pod)


def _celery(cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    if argv[:1] != ["celery"] or "inspect" not in argv:
        return None
    ns = pod["metadata"]["namespace"]
    if not _dependency_ready(cluster, ns, "redis"):
        return ExecResult(
            stderr="Error: Cannot connect to redis://redis-master:6379/0: Error 111 connecting "
            "to redis-master:6379. Connection refused..\n",
            exit_code=1,
        )
    workers, _ = cluster.store.list(POD, ns, labels="app=alphaswarm-worker")
    nodes = [w["metadata"]["name"] for w in workers if cluster.behaviour.serving(w)]
    if not nodes:
        return ExecResult(stderr="Error: No nodes replied within time constraint\n", exit_code=69)
    rng = random.Random(",".join(nodes))
    out = []
    for node in nodes:
        out.append(f"->  celery@{node}: OK")
        for _ in range(2):
            task_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            out.append(
                f"    * {{'id': '{task_id}', 'name': 'alphaswarm.tasks.backtest', "
                f"'args': [{rng.randint(4000, 4999)}], 'kwargs': {{'strategy': 'momentum-v3'}}, "
                f"'type': 'alphaswarm.tasks.backtest', 'hostname': 'celery@{node}', "
                f"'time_start': {1767000000 + rng.randint(0, 9999)}.{rng.randint(0, 999):03d}, "
                f"'acknowledged': True, 'delivery_info': {{'exchange': '', "
                f"'routing_key': 'backtests', 'priority': 0, 'redelivered': False}}, "
                f"'worker_pid': {rng.randint(20, 90)}}}"
            )
    out.append("")
    out.append(f"{len(nodes)} node{'s' if len(nodes) != 1 else ''} online.")
    return ExecResult(stdout="\n".join(out) + "\n")


def _runs(cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    if argv[:4] != ["python", "-m", "alphaswarm.cli", "runs"]:
        return None
    if not postgres_up(cluster):
        return ExecResult(
            stderr="psycopg.OperationalError: connection failed: connection to server at "
            '"postgres" (10.96.40.12), port 5432 failed: Connection refused\n',
            exit_code=1,
        )
    limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else 20
    header = (
        f"{'ID':<6} {'WORKSPACE':<16} {'ACTION':<8} {'STATUS':<10} {'TRIGGERED_BY':<30} STARTED_AT"
    )
    rows = [header]
    actions = ["plan", "apply", "plan", "apply", "destroy"]
    now = datetime.now(UTC)
    for i in range(limit):
        run_id = 4412 - i
        action = actions[i % len(actions)]
        status = "errored" if i == 7 else "applied" if action == "apply" else "planned"
        if action == "destroy":
            status = "discarded"
        who = "ops@alphaswarm.enterprise.com" if i % 3 else "alphaswarm-cp (scheduler)"
        # Newest first, one run every 47 minutes back from now: "recent" must mean recent.
        started = (now - timedelta(minutes=47 * i + 5)).strftime("%Y-%m-%dT%H:%M:00Z")
        rows.append(
            f"{run_id:<6} {'prod-eu' if i % 2 else 'prod-us':<16} {action:<8} {status:<10} "
            f"{who:<30} {started}"
        )
    return ExecResult(stdout="\n".join(rows) + "\n")


def _pg_isready(
    cluster: SandboxCluster, pod: Mapping[str, Any], argv: list[str]
) -> ExecResult | None:
    if argv[:1] != ["pg_isready"]:
        return None
    host = argv[argv.index("-h") + 1] if "-h" in argv[:-1] else "/var/run/postgresql"
    if postgres_up(cluster):
        return ExecResult(stdout=f"{host}:5432 - accepting connections\n")
    return ExecResult(stdout=f"{host}:5432 - no response\n", exit_code=2)


HANDLERS: tuple[Handler, ...] = (
    _hostname,
    _env,
    _df,
    _curl,
    _celery,
    _runs,
    _pg_isready,
    psql,
    redis_cli,
)


def install(cluster: SandboxCluster) -> None:
    """Register the runbook's exec commands with the cluster's runtime."""

    def answer(namespace: str, pod_name: str, container: str, argv: list[str]) -> ExecResult | None:
        pod = cluster.store.get(POD, namespace, pod_name)
        if pod is None:
            return None
        for handler in HANDLERS:
            result = handler(cluster, pod, argv)
            if result is not None:
                return result
        return None

    cluster.runtime.add_exec_handler(answer)
