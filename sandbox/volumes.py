"""What lives on the stateful stores' volumes, and `psql` in the Postgres pod that reads it
(`sandbox.redis_cli` reads the Redis one).

The data belongs to the PersistentVolumeClaim, not to the pod: `postgres-0` or `redis-master-0`
recreated by its StatefulSet mounts the same claim and answers the same row count or key count.
That is what lets a test (and scenario F's verify step) tell "the pod came back with its data"
from "a fresh, empty store came up".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sandbox.resources import POD
from sandbox.runtime import ExecResult

# Seed contents by claim-name prefix: the terraform_runs ledger (runs list shows ids to 4412)
# and the Redis keyspace, with the Celery queue `backtests` empty.
_SEED: tuple[tuple[str, Mapping[str, int]], ...] = (
    ("data-postgres-", {"terraform_runs": 4412}),
    ("redis-data-redis-master-", {"dbsize": 1873, "backtests": 0}),
)


class VolumeData:
    """Counters kept per (namespace, claim); unknown claims start from the seed contents."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], dict[str, int]] = {}

    def _claim(self, namespace: str, claim: str) -> dict[str, int]:
        key = (namespace, claim)
        if key not in self._data:
            seed = next((dict(v) for prefix, v in _SEED if claim.startswith(prefix)), {})
            self._data[key] = seed
        return self._data[key]

    def get(self, namespace: str, claim: str, key: str) -> int:
        with self._lock:
            return self._claim(namespace, claim).get(key, 0)

    def set(self, namespace: str, claim: str, key: str, value: int) -> None:
        with self._lock:
            self._claim(namespace, claim)[key] = value


def claims_of(pod: Mapping[str, Any]) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    ]


def _claim_with(pod: Mapping[str, Any], prefix: str) -> str | None:
    return next((c for c in claims_of(pod) if c.startswith(prefix)), None)


def redis_claim(cluster: Any, namespace: str) -> str | None:
    """The claim of the Redis master, wherever the command was run from."""
    pods, _ = cluster.store.list(POD, namespace, labels="app=redis")
    for pod in pods:
        claim = _claim_with(pod, "redis-data-")
        if claim:
            return claim
    return None


SOCKET = '"/var/run/postgresql/.s.PGSQL.5432"'
# `kubectl exec` runs as the image's user: root in the official postgres image (its entrypoint
# drops to `postgres` only for the server). psql's defaults are that OS user, as role and db.
EXEC_USER = "root"


def _env(pod: Mapping[str, Any], name: str) -> str | None:
    for container in pod["spec"]["containers"]:
        for var in container.get("env") or []:
            if var.get("name") == name and "value" in var:
                return str(var["value"])
    return None


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def _login_refused(pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    """The official image's server: POSTGRES_USER (default postgres) is the only role, and
    POSTGRES_DB (default: that user) the database; the local socket trusts them, no password."""
    role = _env(pod, "POSTGRES_USER") or "postgres"
    database = _env(pod, "POSTGRES_DB") or role
    user = _option(argv, "-U") or EXEC_USER
    wanted = _option(argv, "-d") or user
    fatal = (
        f'role "{user}" does not exist'
        if user != role
        else f'database "{wanted}" does not exist'
        if wanted not in (database, "postgres", "template1")
        else None
    )
    if fatal is not None:
        return ExecResult(
            stderr=f"psql: error: connection to server on socket {SOCKET} failed: FATAL:  "
            f"{fatal}\n",
            exit_code=2,
        )
    if wanted != database:
        return ExecResult(
            stderr='ERROR:  relation "terraform_runs" does not exist\n'
            "LINE 1: select count(*) from terraform_runs\n"
            "                             ^\n",
            exit_code=1,
        )
    return None


def psql(cluster: Any, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    if argv[:1] != ["psql"]:
        return None
    claim = _claim_with(pod, "data-postgres-")
    if claim is None:
        return None
    if not cluster.behaviour.serving(pod):
        return ExecResult(
            stderr=f"psql: error: connection to server on socket {SOCKET}"
            " failed: No such file or directory\n\tIs the server running locally and accepting "
            "connections on that socket?\n",
            exit_code=2,
        )
    refused = _login_refused(pod, argv)
    if refused is not None:
        return refused
    sql = " ".join(argv).lower()
    if "count(*)" not in sql or "terraform_runs" not in sql:
        return ExecResult(stderr="psql: the sandbox answers only count(*) queries\n", exit_code=1)
    count = cluster.volumes.get(pod["metadata"]["namespace"], claim, "terraform_runs")
    tuples_only = any(a in ("-t", "-tA", "-At", "-tAc", "-Atc", "--tuples-only") for a in argv)
    if tuples_only:
        return ExecResult(stdout=f"{count}\n")
    width = max(len(str(count)), 5)
    return ExecResult(
        stdout=f" {'count':^{width}} \n{'-' * (width + 2)}\n {count:>{width}}\n(1 row)\n\n"
    )
