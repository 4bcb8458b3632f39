"""The settings that point the flows at a sandbox: kubeconfig, control plane and JWKS URL.

Flows read pydantic settings (prefix REMEDIATE_, nested with `__`) and never import the sandbox;
these variables are how a test, `remediate sandbox up` or an operator rehearsing by hand aims
them at this sandbox's endpoints instead of production's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sandbox.api_sandbox import JWKS_PATH
from sandbox.celery_backlog import REHEARSAL_QUEUE_DEPTH_ALARM
from sandbox.cluster import SandboxCluster

REHEARSAL_HOLD_SECONDS = 0.5


def flow_env(
    base_url: str,
    cluster: SandboxCluster,
    kubeconfig: Path | None = None,
    broker_url: str | None = None,
) -> dict[str, str]:
    """REMEDIATE_* variables for a sandbox served at `base_url` (the token is a sandbox value).

    With `broker_url` (a sandbox running real Celery workers on its own redis-server), runbook C
    reads that broker, and its alarm is scaled down to the sandbox's backlog."""
    env = {
        # The sandbox's controllers tick many times a second: a fix holds (or not), and JWKS is
        # back for good (or not), in seconds.
        "REMEDIATE_INCIDENTS__HOLD_SECONDS": str(REHEARSAL_HOLD_SECONDS),
        "REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS": str(REHEARSAL_HOLD_SECONDS),
        "REMEDIATE_CONTROL_PLANE__BASE_URL": base_url,
        "REMEDIATE_CONTROL_PLANE__TOKEN": cluster.control_plane.token,
        "REMEDIATE_AUTH__JWKS_URL": base_url + JWKS_PATH,
    }
    if kubeconfig is not None:
        env["REMEDIATE_KUBE__KUBECONFIG"] = str(kubeconfig)
    if broker_url is not None:
        env["REMEDIATE_CELERY__BROKER_URL"] = broker_url
        env["REMEDIATE_CELERY__QUEUE_DEPTH_ALARM"] = str(REHEARSAL_QUEUE_DEPTH_ALARM)
    return env


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """A file `set -a; . sandbox.env` (or docker --env-file) can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path
