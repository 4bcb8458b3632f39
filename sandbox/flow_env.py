"""The settings that point the flows at a sandbox: kubeconfig, control plane, JWKS URL and the
queue runbook C measures.

Flows read pydantic settings (prefix REMEDIATE_, nested with `__`) and never import the sandbox;
these variables are how a test, `remediate sandbox up` or an operator rehearsing by hand aims
them at this sandbox's endpoints instead of production's.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path

from sandbox.auth0 import JWKS_PATH
from sandbox.backlog import REHEARSAL_QUEUE_DEPTH_ALARM, SIMULATED_QUEUE
from sandbox.cluster import SandboxCluster
from sandbox.redis_cli import SANDBOX_REDIS_PASSWORD
from sandbox.topology import SANDBOX_POSTGRES_DB, SANDBOX_POSTGRES_USER

REHEARSAL_HOLD_SECONDS = 0.5


def datastore_env() -> dict[str, str]:
    """How the flows' in-pod checks log in to the sandbox's Postgres and Redis (runbook F's data
    check, C's queue depth without a broker), as the operator sets them for a real cluster."""
    return {
        "REMEDIATE_POSTGRES__USER": SANDBOX_POSTGRES_USER,
        "REMEDIATE_POSTGRES__DATABASE": SANDBOX_POSTGRES_DB,
        "REMEDIATE_REDIS__PASSWORD": SANDBOX_REDIS_PASSWORD,
    }


def flow_env(
    base_url: str,
    cluster: SandboxCluster,
    kubeconfig: Path | None = None,
    broker_url: str | None = None,
) -> dict[str, str]:
    """REMEDIATE_* variables for a sandbox served at `base_url` (the token is a sandbox value).

    Runbook C's alarm is scaled down to the sandbox's backlogs either way. With `broker_url` (a
    sandbox running real Celery workers on its own redis-server) C reads that broker's `celery`
    queue, the settings' default; without one there is no broker to reach from here, so C reads
    the simulated queue's depth the way it can, `kubectl exec redis-master-0 -- redis-cli llen
    backtests`, and the queue setting names that list."""
    env = {
        # The sandbox is no production: said explicitly, since an unset environment is treated
        # as production (runbook F then never deletes the Postgres pod).
        "REMEDIATE_ENVIRONMENT": "dev",
        # The sandbox's controllers tick many times a second: a fix holds (or not), and JWKS is
        # back for good (or not), in seconds.
        "REMEDIATE_INCIDENTS__HOLD_SECONDS": str(REHEARSAL_HOLD_SECONDS),
        "REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS": str(REHEARSAL_HOLD_SECONDS),
        "REMEDIATE_CONTROL_PLANE__BASE_URL": base_url,
        "REMEDIATE_CONTROL_PLANE__TOKEN": cluster.control_plane.token,
        "REMEDIATE_AUTH__JWKS_URL": base_url + JWKS_PATH,
        "REMEDIATE_CELERY__QUEUE_DEPTH_ALARM": str(REHEARSAL_QUEUE_DEPTH_ALARM),
        **datastore_env(),
    }
    if kubeconfig is not None:
        env["REMEDIATE_KUBE__KUBECONFIG"] = str(kubeconfig)
    if broker_url is not None:
        env["REMEDIATE_CELERY__BROKER_URL"] = broker_url
    else:
        env["REMEDIATE_CELERY__QUEUES"] = json.dumps([SIMULATED_QUEUE])
    return env


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """A file `set -a; . sandbox.env` can read: values quoted for the shell where they need it
    (the JSON list of queues), so the flows get them as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    return path
