"""The health sweep's probing and diagnosis over 100, 1,000 and 10,000 pods: API calls (counted
from the sandbox's request journal) and wall time per sweep.

The sandbox is the seeded AlphaSwarm cluster plus a fleet in `alphaswarm`: Deployments of 10
pods each, one Service each, settled (Deployment status and Endpoints written as the
controllers leave them; the controllers are stopped so nothing moves while it is timed). A
cluster grows by adding workloads, so the number of Deployments and Services grows with pods.

Measured in the same run, over loopback HTTP with the same client (`KubernetesCluster`):

- sweep: what `flows/health_sweep.py` does, without the Prefect engine: LIST pods,
  Deployments and Endpoints in each namespace of the configured scope, then `diagnose_health`;
- baseline, per object: the previous sweep's way, one pod LIST per namespace and one GET per
  Deployment and per Service's Endpoints, here for every Deployment and Service so that it sees
  what the sweep sees (the old flow GET only the runbook's four and two, and was blind to the
  rest);
- for scale, raw pods: the sweep's three pod LISTs read with httpx and parsed by the same
  `tasks.adapters.wire.pod` into the same facts, without the official client's models; the
  difference from the sweep's time is nearly all the client's model round trip.

Run: `.venv/bin/python bench/health_sweep.py [pod counts...]` (default 100 1000 10000).
"""

from __future__ import annotations

import copy
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.health_sweep import runbook_objects, swept_namespaces
from sandbox.cluster import SandboxCluster
from sandbox.resources import DEPLOYMENT, ENDPOINTS, POD, REPLICASET, SERVICE
from sandbox.server import SandboxServer
from sandbox.shapes import image_id, name_suffix, owner_ref, pending_pod, rfc3339, template_hash
from sandbox.store import Obj
from tasks.adapters import wire
from tasks.adapters.cluster import ClusterReader
from tasks.connection import close_all, cluster
from tasks.diagnoses.health import HealthReport, HealthSnapshot, diagnose_health
from tasks.probes.common import probe_namespace_lists
from tasks.settings import Settings

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
NS = "alphaswarm"
PODS_PER_DEPLOYMENT = 10
NODES = (("pool-1-node-a", "10.0.1.11"), ("pool-1-node-b", "10.0.1.12"))
DEFAULT_SIZES = (100, 1_000, 10_000)


# -- the fleet ---------------------------------------------------------------------------------


def _template(name: str) -> Obj:
    return {
        "metadata": {"labels": {"app": name, "tier": "fleet"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "ghcr.io/alphaswarm/fleet:1.0.0",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                }
            ],
            "restartPolicy": "Always",
        },
    }


def _running(pod: Obj, n: int, since: str) -> Obj:
    """The pod as the kubelet leaves it once started and Ready."""
    ip = f"10.{100 + n // 65536}.{(n // 256) % 256}.{n % 256}"
    status = pod["status"]
    status.update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
    for cs in status["containerStatuses"]:
        cs.update(
            imageID=image_id(cs["image"]),
            containerID=f"containerd://{n:064x}",
            ready=True,
            started=True,
            state={"running": {"startedAt": since}},
        )
    status["conditions"] = [
        {"type": t, "status": "True", "lastTransitionTime": since}
        for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
    ] + [{"type": "PodScheduled", "status": "True", "lastTransitionTime": since}]
    return pod


def add_fleet(sandbox: SandboxCluster, pods: int, *, namespace: str = NS) -> None:
    """`pods` running, ready pods in Deployments of PODS_PER_DEPLOYMENT, each behind a Service,
    settled as the controllers would leave them (status, ReplicaSets, Endpoints)."""
    store, rng = sandbox.store, random.Random(7)
    since = rfc3339(time.time() - 86_400)
    for first in range(0, pods, PODS_PER_DEPLOYMENT):
        name = f"fleet-{first // PODS_PER_DEPLOYMENT:04d}"
        replicas = min(PODS_PER_DEPLOYMENT, pods - first)
        template = _template(name)
        labels = dict(template["metadata"]["labels"])
        deployment = store.create(
            DEPLOYMENT,
            {
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": template,
                    "progressDeadlineSeconds": 600,
                },
            },
        )
        hash_ = template_hash(template)
        rs_template = copy.deepcopy(template)
        rs_template["metadata"]["labels"]["pod-template-hash"] = hash_
        rs = store.create(
            REPLICASET,
            {
                "metadata": {
                    "name": f"{name}-{hash_}",
                    "namespace": namespace,
                    "labels": dict(rs_template["metadata"]["labels"]),
                    "ownerReferences": [owner_ref(deployment)],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {**labels, "pod-template-hash": hash_}},
                    "template": rs_template,
                },
                "status": {"replicas": replicas, "readyReplicas": replicas},
            },
        )
        addresses = []
        for i in range(replicas):
            node, host_ip = NODES[i % len(NODES)]
            pod = store.create(
                POD,
                _running(
                    pending_pod(
                        rs_template,
                        name=f"{rs['metadata']['name']}-{name_suffix(rng)}",
                        namespace=namespace,
                        owner=rs,
                        node=node,
                        host_ip=host_ip,
                        extra_labels={},
                        created=since,
                    ),
                    first + i,
                    since,
                ),
            )
            meta = pod["metadata"]
            addresses.append(
                {
                    "ip": pod["status"]["podIP"],
                    "nodeName": node,
                    "targetRef": {
                        "kind": "Pod",
                        "name": meta["name"],
                        "namespace": namespace,
                        "uid": meta["uid"],
                    },
                }
            )
        settled = store.mutable(DEPLOYMENT, namespace, name)
        settled["status"] = {
            "observedGeneration": settled["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "lastTransitionTime": since,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "lastTransitionTime": since,
                },
            ],
        }
        store.replace(DEPLOYMENT, settled)
        store.create(
            SERVICE,
            {
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "type": "ClusterIP",
                    "selector": labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            },
        )
        store.create(
            ENDPOINTS,
            {
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "subsets": [
                    {
                        "addresses": addresses,
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                    }
                ],
            },
        )


# -- the three ways to look --------------------------------------------------------------------


def sweep(namespaces: list[str], settings: Settings) -> HealthReport:
    """The flow's probing and diagnosis, without the Prefect engine around them."""
    deployments, services = runbook_objects(settings.workloads)
    listings = [probe_namespace_lists.fn(ns) for ns in namespaces]
    return diagnose_health(
        HealthSnapshot.from_listings(
            listings, expected_deployments=deployments, ingress_facing=services
        )
    )


def per_object(namespaces: list[str], c: ClusterReader, names: dict[str, list[str]]) -> int:
    """The previous sweep's way, over every Deployment and Service: GET each one."""
    seen = 0
    for ns in namespaces:
        seen += len(c.pods(ns))
        for name in names[f"deployments/{ns}"]:
            seen += c.deployment(ns, name) is not None
        for name in names[f"services/{ns}"]:
            seen += c.endpoints(ns, name) is not None
    return seen


@dataclass
class Figures:
    calls: float  # API requests per run, from the sandbox's journal
    wall: float  # median seconds per run
    cpu: float  # median CPU seconds per run, this process (client and sandbox share it)


def measure(server: SandboxServer, run: Callable[[], object], repetitions: int) -> Figures:
    journal = server.cluster.journal
    journal.clear()
    walls, cpus = [], []
    for _ in range(repetitions):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Figures(
        calls=len(journal.requests()) / repetitions,
        wall=statistics.median(walls),
        cpu=statistics.median(cpus),
    )


def raw_pod_lists(namespaces: list[str], url: str) -> int:
    """The pod LISTs decoded straight from JSON into the same facts, without the client's
    models: what the client's model round trip costs on top of HTTP and our own parsing."""
    with httpx.Client(base_url=url, timeout=120) as http:
        return sum(
            len([wire.pod(p) for p in http.get(f"/api/v1/namespaces/{ns}/pods").json()["items"]])
            for ns in namespaces
        )


def repetitions_for(pods: int) -> int:
    return 10 if pods <= 100 else 3 if pods <= 1_000 else 1


@dataclass
class Result:
    pods: int
    deployments: int
    services: int
    repetitions: int
    sweep: Figures
    per_object: Figures
    raw_pods: Figures


def bench(pods: int, folder: Path) -> Result:
    server = SandboxServer(tick_seconds=3600).start()
    server.controllers.stop()
    try:
        seeded = len(server.cluster.store.list(POD)[0])
        add_fleet(server.cluster, pods - seeded)
        kubeconfig = server.write_kubeconfig(folder / f"kubeconfig-{pods}")
        os.environ["REMEDIATE_KUBE__KUBECONFIG"] = str(kubeconfig)
        # A 10,000-pod LIST takes longer than the 10 s default on a busy 2-core machine.
        os.environ["REMEDIATE_KUBE__REQUEST_TIMEOUT_SECONDS"] = "300"
        settings = Settings()
        namespaces = swept_namespaces(None, settings.workloads)
        c = cluster()
        store = server.cluster.store
        names = {
            f"{kind.plural}/{ns}": [o["metadata"]["name"] for o in store.list(kind, ns)[0]]
            for ns in namespaces
            for kind in (DEPLOYMENT, SERVICE)
        }
        c.pods(namespaces[-1])  # open the connection
        reports: list[HealthReport] = []
        n = repetitions_for(pods)
        swept = measure(server, lambda: reports.append(sweep(namespaces, settings)), n)
        assert reports[-1].pods_seen == pods, (reports[-1].pods_seen, pods)
        assert reports[-1].healthy, reports[-1].findings
        return Result(
            pods=pods,
            deployments=sum(len(v) for k, v in names.items() if k.startswith("deployments/")),
            services=sum(len(v) for k, v in names.items() if k.startswith("services/")),
            repetitions=n,
            sweep=swept,
            per_object=measure(server, lambda: per_object(namespaces, c, names), n),
            raw_pods=measure(server, lambda: raw_pod_lists(namespaces, server.url), n),
        )
    finally:
        close_all()
        server.stop()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or list(DEFAULT_SIZES)
    print(
        "Health sweep over loopback HTTP: API calls and time per sweep; a fleet of "
        f"{PODS_PER_DEPLOYMENT}-pod Deployments, each behind a Service, in {NS}."
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)")
    header = (
        f"{'pods':>6} {'deploys':>7} {'reps':>4} | {'sweep calls':>11} {'wall':>9} {'cpu':>9} | "
        f"{'per-object calls':>16} {'wall':>9} {'cpu':>9} | {'ratio calls':>11} {'wall':>6} "
        f"{'cpu':>6} | {'raw pods':>9}"
    )
    print(header)
    print("-" * len(header))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for pods in sizes:
            r = bench(pods, Path(folder))
            results.append(r)
            s, o = r.sweep, r.per_object
            print(
                f"{r.pods:>6,} {r.deployments:>7,} {r.repetitions:>4} | "
                f"{s.calls:>11.0f} {ms(s.wall):>9} {ms(s.cpu):>9} | "
                f"{o.calls:>16,.0f} {ms(o.wall):>9} {ms(o.cpu):>9} | "
                f"{s.calls / o.calls:>10.3f}x {s.wall / o.wall:>5.2f}x {s.cpu / o.cpu:>5.2f}x | "
                f"{ms(r.raw_pods.wall):>9}",
                flush=True,
            )
    calls = {r.sweep.calls for r in results}
    print(
        f"sweep calls per sweep: {', '.join(f'{c:.0f}' for c in sorted(calls))} at every size"
        if len(calls) == 1
        else f"sweep calls per sweep VARY: {sorted(calls)}"
    )
    print(
        "ratio: sweep / per-object baseline (a pod LIST per namespace, a GET per Deployment and "
        "per Endpoints), same client, same run; cpu: this process's CPU time (client and "
        "sandbox), steadier than wall on a shared machine. raw pods: the three pod LISTs parsed "
        "into the same facts without the client's models, for scale."
    )


if __name__ == "__main__":
    main()
