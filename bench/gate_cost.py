"""What the gate costs per mutation, against the bare adapter call, in one run.

Each round scales alphaswarm-worker on a sandbox over loopback HTTP (a real PATCH of the scale
subresource each time: the replica count alternates, so nothing is ever "already done"), three
ways, interleaved so the machine's noise falls on all of them alike:

- bare:   the Change's one adapter call (`perform`), what a script with the client would do;
- audit:  `apply_change` with the audit rows only (facts before, "already done?", the rows);
- guards: `apply_change` as the flows call it, audit rows and every guard: the kill switch (the
          setting and the Prefect Variable, read through the API), the scope, the lease row
          across processes, the cooldown, the circuit breaker and the budget.

The store is a SQLite file (the default store), the Prefect API a local ephemeral server.

Run: `.venv/bin/python bench/gate_cost.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect.context import SyncClientContext

from sandbox.server import SandboxServer
from store.engine import dispose_all
from store.schema import upgrade
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.changes.audit import StoreAudit
from tasks.changes.gate import apply_change
from tasks.changes.guards import StoreGuards
from tasks.changes.models import Reach, ScaleWorkload, Target
from tasks.settings import KubeAccess, Safety, Workloads

WORKER = Target(kind="Deployment", namespace="alphaswarm", name="alphaswarm-worker")
# The bench makes hundreds of changes to one target within a minute: limits off, guards asked.
SAFETY = Safety(cooldown_seconds=0, max_changes_per_target=10**6, max_changes_per_hour=10**6)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-cost-") as tmp, SandboxServer() as sandbox:
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        url = f"sqlite:///{Path(tmp) / 'incidents.db'}"
        upgrade(url)
        access = KubeAccess(kubeconfig=sandbox.write_kubeconfig(Path(tmp) / "kubeconfig"))
        # A flow run holds one Prefect client for all its tasks (SyncClientContext); so does
        # the bench, or every Variable read would build a client (and load the CA bundle).
        with KubernetesCluster(access) as cluster, SyncClientContext.get_or_create():
            reach = Reach(cluster=cluster)
            audit = StoreAudit(url)
            guards = StoreGuards(url, SAFETY, Workloads().scope)
            replicas = iter(range(10**9))

            def change() -> ScaleWorkload:
                return ScaleWorkload(target=WORKER, replicas=2 + next(replicas) % 2)

            def bare() -> None:
                c = change()
                c.perform(reach, c.observe(reach), dry_run=False)

            def audited() -> None:
                apply_change(
                    change(), key=str(uuid.uuid4()), dry_run=False, reach=reach, audit=audit
                )

            def guarded() -> None:
                apply_change(
                    change(),
                    key=str(uuid.uuid4()),
                    dry_run=False,
                    reach=reach,
                    audit=audit,
                    guards=guards,
                )

            ways: dict[str, Callable[[], None]] = {
                "bare": bare,
                "audit": audited,
                "guards": guarded,
            }
            print(
                "warming up (the first Variable read starts Prefect's local server)...", flush=True
            )
            for way in ways.values():
                way()
            times: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(args.rounds):
                for name, way in ways.items():
                    started = time.perf_counter()
                    way()
                    times[name].append(time.perf_counter() - started)
        dispose_all()
    base = statistics.median(times["bare"])
    print(f"\none scale PATCH per mutation, {args.rounds} rounds, interleaved")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(
            f"  {name:7} p50 {p50 * 1000:7.2f} ms   p95 {percentile(values, 0.95) * 1000:7.2f} ms"
            f"   ratio to bare p50 {p50 / base:5.2f}x"
        )
    print(
        "the bare call reads the scale and PATCHes it (2 requests); the gate adds the facts "
        "read, its audit rows (2 commits), and with guards the Variable read, the lease (2 "
        "commits) and the history counts (2 queries)"
    )


if __name__ == "__main__":
    main()
