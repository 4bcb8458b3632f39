"""The health sweep over 100, 1,000 and 10,000 pods: wall and CPU per sweep, API calls, the
client's peak memory, against the raw-read floor and the previous sweep, measured in one run.

The sandbox runs in a child process, as a real API server is another process: the client's
wall time and CPU are the sweep's own, not shared with the server's GIL. It is the seeded
AlphaSwarm cluster plus a fleet in `alphaswarm` built there (`add_fleet`): Deployments of 10
pods each, one Service each, settled (Deployment status and Endpoints written as the
controllers leave them; the controllers are stopped so nothing moves while it is timed). A
cluster grows by adding workloads, so Deployments and Services grow with pods (1,000 each at
10,000 pods).

Measured side by side, over loopback HTTP with the same official client for transport:

- sweep: what `flows/health_sweep.py` does, without the Prefect engine: in each namespace of
  the configured scope, pods, Deployments and Endpoints LISTed in pages of 500 (`limit` and
  `continue`, as kubectl and client-go's reflector list), each page's bytes decoded with orjson
  straight into the facts (`PodRow`s for pods), then `diagnose_health`;
- raw floor: the same paged requests, each page only decoded with orjson (no facts);
- before: the previous sweep, one LIST per kind and namespace without `limit`, through the
  client's models (`V1PodList` built, serialised back with `sanitize_for_serialization`, then
  the full `wire.pod`).

Calls are counted from the sandbox's journal: ceil(n / 500) per kind and namespace, so they grow
with the pod count in steps of 500 (9 calls up to 500 objects of each kind per namespace); what
stays flat is what a page holds: the client keeps one page of raw JSON at a time (about 1 MB),
where the previous sweep held the whole 20 MB answer and its model objects at once. Peak memory
is the client's, traced (tracemalloc) in a separate untimed run of each way.

Run: `.venv/bin/python bench/health_sweep.py [pod counts...]` (default 100 1000 10000).
"""

from __future__ import annotations

import copy
import gc
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.health_sweep import runbook_objects, swept_namespaces
from sandbox.cluster import SandboxCluster
from sandbox.resources import DEPLOYMENT, ENDPOINTS, POD, REPLICASET, SERVICE
from sandbox.server import SandboxServer
from sandbox.shapes import image_id, name_suffix, owner_ref, pending_pod, rfc3339, template_hash
from sandbox.store import Obj
from tasks.adapters import wire
from tasks.connection import close_all
from tasks.diagnoses.health import HealthReport, HealthSnapshot, NamespaceListing, diagnose_health
from tasks.probes.common import probe_namespace_lists
from tasks.settings import Settings

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
NS = "alphaswarm"
PODS_PER_DEPLOYMENT = 10
NODES = (("pool-1-node-a", "10.0.1.11"), ("pool-1-node-b", "10.0.1.12"))
DEFAULT_SIZES = (100, 1_000, 10_000)
PAGE = 500


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


# -- the sandbox, in a process of its own --------------------------------------------------


def serve_sandbox(pods: int, kubeconfig: str, pipe: Connection) -> None:
    """The child: a settled sandbox of `pods` pods; answers "calls", "clear", "cpu", "stop"."""
    server = SandboxServer(tick_seconds=3600).start()
    server.controllers.stop()
    try:
        seeded = len(server.cluster.store.list(POD)[0])
        add_fleet(server.cluster, pods - seeded)
        server.write_kubeconfig(Path(kubeconfig))
        pipe.send("ready")
        while True:
            command = pipe.recv()
            if command == "calls":
                pipe.send(len(server.cluster.journal.requests()))
            elif command == "clear":
                server.cluster.journal.clear()
                pipe.send(None)
            elif command == "cpu":
                pipe.send(time.process_time())
            else:
                pipe.send(None)
                return
    finally:
        server.stop()


class Sandbox:
    def __init__(self, pods: int, folder: Path) -> None:
        self.kubeconfig = folder / f"kubeconfig-{pods}"
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(
            target=serve_sandbox, args=(pods, str(self.kubeconfig), child), daemon=True
        )
        self._process.start()
        if not self._pipe.poll(600) or self._pipe.recv() != "ready":
            raise RuntimeError("the sandbox did not start")

    def ask(self, command: str) -> Any:
        self._pipe.send(command)
        return self._pipe.recv()

    def stop(self) -> None:
        self.ask("stop")
        self._process.join(30)


# -- the three ways to look --------------------------------------------------------------------


def _report(listings: list[NamespaceListing], settings: Settings) -> HealthReport:
    deployments, services = runbook_objects(settings.workloads)
    return diagnose_health(
        HealthSnapshot.from_listings(
            listings, expected_deployments=deployments, ingress_facing=services
        )
    )


def sweep(namespaces: list[str], settings: Settings) -> HealthReport:
    """The flow's probing and diagnosis, without the Prefect engine around them."""
    return _report([probe_namespace_lists.fn(ns) for ns in namespaces], settings)


class Raw:
    """The official client, for the floor and the previous sweep's way."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.api.configuration.retries = False
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    def lists(self, ns: str) -> tuple[Callable[..., Any], ...]:
        return (
            self.core.list_namespaced_pod,
            self.apps.list_namespaced_deployment,
            self.core.list_namespaced_endpoints,
        )

    def floor(self, namespaces: list[str]) -> int:
        """The sweep's paged requests, each page decoded with orjson and dropped: no facts."""
        seen = 0
        gc.disable()  # as the sweep's reads pause it
        try:
            seen = self._floor(namespaces)
        finally:
            gc.enable()
        return seen

    def _floor(self, namespaces: list[str]) -> int:
        seen = 0
        for ns in namespaces:
            for call in self.lists(ns):
                token = None
                while True:
                    response = call(
                        ns,
                        limit=PAGE,
                        _continue=token,
                        _preload_content=False,
                        _request_timeout=300,
                    )
                    page = orjson.loads(response.data)
                    response.release_conn()
                    seen += len(page["items"])
                    token = page["metadata"].get("continue")
                    del page, response  # one page at a time, as the sweep holds them
                    if not token:
                        break
        return seen

    def before(self, namespaces: list[str], settings: Settings) -> HealthReport:
        """The previous sweep: one LIST per kind without `limit`, through the client's models
        (built, serialised back, then the full `wire.pod`)."""
        listings = []
        for ns in namespaces:
            pods, deployments, endpoints = (
                self.api.sanitize_for_serialization(call(ns, _request_timeout=300))["items"]
                for call in self.lists(ns)
            )
            listings.append(
                NamespaceListing(
                    namespace=ns,
                    pods=tuple(wire.pod(p) for p in pods),
                    deployments=tuple(wire.deployment(d) for d in deployments),
                    endpoints=tuple(wire.endpoints(e) for e in endpoints),
                )
            )
        return _report(listings, settings)


@dataclass
class Figures:
    calls: float  # API requests per run, from the sandbox's journal
    wall: float  # median seconds per run
    cpu: float  # median CPU seconds per run, this (the client's) process
    server_cpu: float  # median CPU seconds per run, the sandbox's process
    peak: int  # the client's peak traced memory in one run, bytes


def measure(sandbox: Sandbox, run: Callable[[], object], repetitions: int) -> Figures:
    run()  # warm: connections, imports, caches
    sandbox.ask("clear")
    walls, cpus, servers = [], [], []
    for _ in range(repetitions):
        server = sandbox.ask("cpu")
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        servers.append(sandbox.ask("cpu") - server)
    calls = sandbox.ask("calls") / repetitions
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Figures(
        calls=calls,
        wall=statistics.median(walls),
        cpu=statistics.median(cpus),
        server_cpu=statistics.median(servers),
        peak=peak,
    )


def repetitions_for(pods: int) -> int:
    return 10 if pods <= 1_000 else 5


@dataclass
class Result:
    pods: int
    repetitions: int
    sweep: Figures
    floor: Figures
    before: Figures


def bench(pods: int, folder: Path) -> Result:
    sandbox = Sandbox(pods, folder)
    try:
        os.environ["REMEDIATE_KUBE__KUBECONFIG"] = str(sandbox.kubeconfig)
        # The previous sweep's one 10,000-pod LIST takes longer than the 10 s default here.
        os.environ["REMEDIATE_KUBE__REQUEST_TIMEOUT_SECONDS"] = "300"
        settings = Settings()
        namespaces = swept_namespaces(None, settings.workloads)
        raw = Raw(sandbox.kubeconfig)
        reports: list[HealthReport] = []
        n = repetitions_for(pods)
        swept = measure(sandbox, lambda: reports.append(sweep(namespaces, settings)), n)
        assert reports[-1].pods_seen == pods, (reports[-1].pods_seen, pods)
        assert reports[-1].healthy, reports[-1].findings
        floor = measure(sandbox, lambda: raw.floor(namespaces), n)
        old = raw.before(namespaces, settings)
        assert old.model_dump(exclude={"observed_at"}) == reports[-1].model_dump(
            exclude={"observed_at"}
        ), "the previous sweep and this one disagree"
        before = measure(
            sandbox, lambda: raw.before(namespaces, settings), 1 if pods > 1_000 else 3
        )
        raw.api.close()
        return Result(pods=pods, repetitions=n, sweep=swept, floor=floor, before=before)
    finally:
        close_all()
        sandbox.stop()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or list(DEFAULT_SIZES)
    print(
        "Health sweep over loopback HTTP, the sandbox in a child process: per sweep, medians; "
        f"a fleet of {PODS_PER_DEPLOYMENT}-pod Deployments, each behind a Service, in {NS}."
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)")
    header = (
        f"{'pods':>6} {'reps':>4} | {'sweep calls':>11} {'wall':>8} {'cpu':>8} {'server':>8} "
        f"{'peak':>8} | {'floor wall':>10} {'cpu':>7} {'peak':>8} | {'before calls':>12} "
        f"{'wall':>9} "
        f"{'cpu':>9} {'peak':>9} | {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as folder:
        for pods in sizes:
            r = bench(pods, Path(folder))
            s, f, b = r.sweep, r.floor, r.before
            print(
                f"{r.pods:>6,} {r.repetitions:>4} | {s.calls:>11.0f} {ms(s.wall):>8} "
                f"{ms(s.cpu):>8} {ms(s.server_cpu):>8} {mb(s.peak):>8} | {ms(f.wall):>10} "
                f"{ms(f.cpu):>7} {mb(f.peak):>8} | {b.calls:>12.0f} {ms(b.wall):>9} {ms(b.cpu):>9} "
                f"{mb(b.peak):>9} | {b.wall / s.wall:>7.1f}x",
                flush=True,
            )
    print(
        "sweep: the flow's path (paged LISTs of 500, orjson into facts, diagnose_health); "
        "cpu: the client's process; server: the sandbox's process; peak: the client's traced "
        "peak in one run (the facts, which grow with the pods, and one page being read). "
        "floor: the same paged requests, orjson only (its peak: one page, flat in the pod "
        "count). before: the previous sweep (one LIST per kind through the client's "
        "models), same run; speed-up: its wall over the sweep's."
    )


if __name__ == "__main__":
    main()
