"""Session-wide test environment, set before any test module imports Prefect."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Loopback calls must never go through a proxy from the environment.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
# Prefect writes its home on import: keep it out of ~/.prefect and make sure it exists.
_home = Path(os.environ.get("PREFECT_HOME") or tempfile.mkdtemp(prefix="remediate-prefect-"))
_home.mkdir(parents=True, exist_ok=True)
os.environ["PREFECT_HOME"] = str(_home)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# The real-Celery fixtures (redis_server, redis_url, no_orphans), for tests/workers and tests/flows;
# the real PostgreSQL server; the incident store on SQLite or PostgreSQL; the Prefect harness.
pytest_plugins = [
    "tests.celery_plugin",
    "tests.postgres_plugin",
    "tests.store_plugin",
    "tests.prefect_plugin",
]
