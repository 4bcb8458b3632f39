"""What the gate costs per mutation, against the bare adapter call, in one run.

Each round scales alphaswarm-worker on a sandbox over loopback HTTP (a real PATCH of the scale
subresource each time: the replica count alternates, so nothing is ever "already done"), three
ways, interleaved so the machine's noise falls on all of them alike:

- bare:   the Change's one adapter call (`perform`), what a script with the client would do;
- audit:  `apply_change` with the audit rows only (facts before, "already done?", the rows);
- guards: `apply_change` as the flows call it, audit rows and every guard: the scope, the lease
          row across processes, the blast radius (every other round is a scale-down, which
          reads the workload's pods), the cooldown, the circuit breaker and the budget (one
          query and the budget's reservation, under the budget's lock), and the kill switch
          (the setting and the Prefect Variable, read from the server right before the send).

The limits are set so that none refuses and the cooldown never matches (its window is a
millisecond, shorter than a round): every guard is asked and answers, and every guarded change
is sent (the bench stops if one is not). The store is a SQLite file (the default store) or, with
`--store URL`, an empty PostgreSQL database (migrated here); the Prefect API is a local
ephemeral server, reached through one client kept for the run as a flow run keeps it.

It prints each way's p50 and p90, the guarded gate's p50 over the bare call's in ms, and PASS
when that is at most 10 ms (issue 22), FAIL otherwise.

Run: `.venv/bin/python bench/gate_cost.py [--rounds N] [--store URL]`.
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
from store.engine import dispose_all, shown
from store.schema import upgrade
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.changes.audit import StoreAudit
from tasks.changes.gate import apply_change
from tasks.changes.guards import StoreGuards
from tasks.changes.models import ChangeStatus, Reach, ScaleWorkload, Target
from tasks.settings import KubeAccess, Safety, Workloads

WORKER = Target(kind="Deployment", namespace="alphaswarm", name="alphaswarm-worker")
# Hundreds of changes to one target within a minute: every guard asked, none refusing.
SAFETY = Safety(cooldown_seconds=0.001, max_changes_per_target=10**6, max_changes_per_hour=10**6)
GOAL_MS = 10.0  # issue 22: the gate with every guard at most this over the bare call


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument(
        "--store", default="", help="an empty database's URL (default: a SQLite file)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-cost-") as tmp, SandboxServer() as sandbox:
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # A loaded machine starts the ephemeral server slowly; the default gives it 20 s.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        url = args.store or f"sqlite:///{Path(tmp) / 'incidents.db'}"
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
                record = apply_change(
                    change(),
                    key=str(uuid.uuid4()),
                    dry_run=False,
                    reach=reach,
                    audit=audit,
                    guards=guards,
                )
                if record.status is not ChangeStatus.APPLIED:  # it must have been sent
                    raise SystemExit(f"a guarded change was not sent: {record}")

            ways: dict[str, Callable[[], None]] = {
                "bare": bare,
                "audit": audited,
                "guards": guarded,
            }
            print(
                "warming up (the first Variable read starts Prefect's local server)...", flush=True
            )
            for _ in range(3):
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
    store = "SQLite file" if not args.store else shown(url)
    print(f"\none scale PATCH per mutation, {args.rounds} rounds, interleaved; store: {store}")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(
            f"  {name:7} p50 {p50 * 1000:7.2f} ms   p90 {percentile(values, 0.9) * 1000:7.2f} ms"
            f"   over bare p50 {(p50 - base) * 1000:+7.2f} ms ({p50 / base:5.2f}x)"
        )
    over = (statistics.median(times["guards"]) - base) * 1000
    verdict = "PASS" if over <= GOAL_MS else "FAIL"
    print(
        f"every guard on: {over:.2f} ms over the bare call at p50 "
        f"(goal: at most {GOAL_MS:.0f} ms): {verdict}"
    )
    print(
        "the bare call reads the scale and PATCHes it (2 requests); the gate adds the facts "
        "read and its audit rows (2 commits); every guard adds the lease (1 commit to take, "
        "1 to let go), the blast radius (a scale-down: the scale, its pods, their ReplicaSet), "
        "one history query with the budget's reservation (1 commit) and one Variable read"
    )


if __name__ == "__main__":
    main()
