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


def psql(cluster: Any, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    if argv[:1] != ["psql"]:
        return None
    claim = _claim_with(pod, "data-postgres-")
    if claim is None:
        return None
    if not cluster.behaviour.serving(pod):
        return ExecResult(
            stderr='psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432"'
            " failed: No such file or directory\n\tIs the server running locally and accepting "
            "connections on that socket?\n",
            exit_code=2,
        )
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
