"""The `crashloop-single:relapse` incident's second act: the fix holds, then fails once more.

A rehearsal must also show what the remediation does when a mitigation that verified healthy
stops holding: the incident is re-opened or a new one raised, never a stale "resolved". So after
the runbook's fix (a rollout restart of alphaswarm-core replaces the crash-looping pod), this
effect waits until the Deployment has settled (every active core pod of one ReplicaSet, as many
as it wants, Ready, none crashing), lets it run healthy for `after_seconds`, then breaks one pod
of that new ReplicaSet the same way, once. Its crash persists however long anyone waits; the
next fix (a second rollout restart) heals it for good and the effect ends. Deleting the crashing
pod counts as a fix too (its replacement is healthy), and is followed by the same relapse.

The clock is the controllers' (`now`, wall time unless a test replaces it), so "holds for a
while" is seconds, not ticks, whatever the tick. The delay is set where the incident is injected:

- `RELAPSE_AFTER_SECONDS` here, the module-level default (20 s), read at injection time, so a
  test or an embedding program sets `sandbox.relapse.RELAPSE_AFTER_SECONDS = 2.0` beforehand;
- the environment variable SANDBOX_RELAPSE_AFTER_SECONDS of the sandbox's process, which wins
  over it, for `remediate up` / `remediate sandbox up` run from a shell;
- or, once injected, `cluster.effects[EFFECT].after_seconds`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.resources import DEPLOYMENT, POD
from sandbox.shapes import is_active, is_ready

NS = "alphaswarm"
APP = "alphaswarm-core"
EFFECT = "crashloop-single:relapse"  # its key in `cluster.effects`
RELAPSE_AFTER_SECONDS = 20.0
ENV = "SANDBOX_RELAPSE_AFTER_SECONDS"


def relapse_after_seconds() -> float:
    """The delay an injection uses now: the environment's, else the module default."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return RELAPSE_AFTER_SECONDS
    try:
        return max(float(raw), 0.0)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r} is not a number of seconds") from None


def _core_pods(cluster: SandboxCluster) -> list[Mapping[str, Any]]:
    pods, _ = cluster.store.list(POD, NS, labels=f"app={APP}")
    return sorted((p for p in pods if is_active(p)), key=lambda p: p["metadata"]["name"])


def _settled(cluster: SandboxCluster, pods: list[Mapping[str, Any]]) -> bool:
    """The rollout is over: as many pods as wanted, all of one ReplicaSet, Ready, none crashing."""
    deployment = cluster.store.get(DEPLOYMENT, NS, APP)
    if deployment is None or len(pods) != deployment["spec"].get("replicas", 1):
        return False
    hashes = {(p["metadata"].get("labels") or {}).get("pod-template-hash") for p in pods}
    return len(hashes) == 1 and all(
        is_ready(p) and not cluster.behaviour.of(p).crash_looping for p in pods
    )


@dataclass
class Relapse:
    """Follows the crash-looping pod `crashing` (by uid) through its fix, then breaks one pod of
    the ReplicaSet that replaced it, once."""

    crashing: str
    after_seconds: float
    crash_log: tuple[str, ...]
    exit_code: int = 3
    relapsed: bool = False
    healthy_since: float | None = None  # when the pods that replaced the crashing one settled

    def __call__(self, cluster: SandboxCluster, now: float) -> None:
        pods = _core_pods(cluster)
        if any(p["metadata"]["uid"] == self.crashing for p in pods) or not _settled(cluster, pods):
            self.healthy_since = None  # not fixed yet, or a rollout still under way
            return
        if self.relapsed:
            cluster.effects.pop(EFFECT, None)  # the second fix holds for good
            return
        if self.healthy_since is None:
            self.healthy_since = now
        if now - self.healthy_since < self.after_seconds:
            return
        victim = pods[0]["metadata"]["uid"]
        cluster.behaviour.set_pod(
            victim, crash_looping=True, crash_log=self.crash_log, exit_code=self.exit_code
        )
        self.crashing, self.relapsed, self.healthy_since = victim, True, None
