"""postgres_exporter's `pg_up` and redis_exporter's `redis_up`: whether the exporter, a separate
pod beside the database, could connect on this scrape.

The exporter itself stays up while the database is down, so the scrape succeeds and answers 0;
that is what the PostgresqlDown and RedisDown rules (`pg_up == 0`, `redis_up == 0`) alert on. The
answer is the one `pg_isready` and `redis-cli ping` give in the sandbox (`sandbox.execs`,
`sandbox.redis_cli`): 1 while a Postgres (Redis) pod serves, that is runs, is Ready and is not
crash-looping; 0 while postgres-0 (redis-master-0) crash-loops or is being replaced. A Postgres
managed outside the cluster (the `managed-postgres` condition) is always up: no incident of the
sandbox can take it down.
"""

from __future__ import annotations

from sandbox.cluster import SandboxCluster
from sandbox.execs import postgres_up
from sandbox.exposition import Family, gauge
from sandbox.redis_cli import redis_serving

NS = "alphaswarm"


def postgres_families(cluster: SandboxCluster) -> list[Family]:
    up = gauge(
        "pg_up",
        "Whether the last scrape of metrics from PostgreSQL was able to connect to the server "
        "(1 for yes, 0 for no).",
    )
    return [up.add(1 if postgres_up(cluster) else 0)]


def redis_families(cluster: SandboxCluster) -> list[Family]:
    up = gauge("redis_up", "Whether the last scrape could connect to the Redis instance.")
    return [up.add(1 if redis_serving(cluster, NS) else 0)]
