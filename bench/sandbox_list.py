"""Time listing 5,000 pods from the sandbox over loopback, as JSON and as a kubectl Table.

The baseline is a bare aiohttp handler on the same loop returning the same bytes the JSON list
produced, so the ratio isolates the sandbox's own cost (store, selectors, encoding, tables) from
HTTP and client overhead. Run: `.venv/bin/python bench/sandbox_list.py [pods] [repetitions]`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.resources import POD
from sandbox.server import SandboxServer

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def realistic_pod(i: int) -> dict[str, object]:
    app = ("api", "web", "worker", "redis")[i % 4]
    name = f"{app}-7d9f8b6c5d-{i:05d}"
    return {
        "metadata": {
            "name": name,
            "namespace": "alphaswarm",
            "labels": {"app": app, "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-10T10:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-7d9f8b6c5d",
                    "uid": f"rs-{app}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{i % 7}",
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "app",
                    "image": f"ghcr.io/acme/{app}:1.4.2",
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "FEATURE_X", "value": "on"},
                    ],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.0.{i // 250}.{i % 250}",
            "hostIP": "192.168.1.10",
            "startTime": "2026-01-10T10:00:00Z",
            "qosClass": "Burstable",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "image": f"ghcr.io/acme/{app}:1.4.2",
                    "imageID": f"ghcr.io/acme/{app}@sha256:0123456789abcdef",
                    "containerID": f"containerd://{i:064x}",
                    "ready": True,
                    "started": True,
                    "restartCount": i % 3,
                    "state": {"running": {"startedAt": "2026-01-10T10:00:00Z"}},
                    "lastState": (
                        {
                            "terminated": {
                                "exitCode": 137,
                                "reason": "OOMKilled",
                                "finishedAt": "2026-01-10T10:05:00Z",
                            }
                        }
                        if i % 3
                        else {}
                    ),
                }
            ],
        },
    }


def timed(fn: Callable[[], object], repetitions: int) -> list[float]:
    fn()  # warm up
    out = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(label: str, samples: list[float]) -> float:
    samples = sorted(samples)
    median = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(f"{label:<34} median {median * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms")
    return median


def main() -> None:
    pods = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    repetitions = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = SandboxServer(seeded=False).start()
    server.controllers.stop()
    try:
        for i in range(pods):
            server.cluster.store.create(POD, realistic_pod(i))
        path = "/api/v1/namespaces/alphaswarm/pods"
        with httpx.Client(base_url=server.url, timeout=30) as http:
            body = http.get(path).content
            assert len(http.get(path).json()["items"]) == pods
            print(f"{pods} pods, JSON list {len(body) / 1e6:.1f} MB, {repetitions} repetitions")
            json_median = summary("sandbox JSON list", timed(lambda: http.get(path), repetitions))
            table_median = summary(
                "sandbox Table (kubectl get)",
                timed(lambda: http.get(path, headers={"Accept": TABLE}), repetitions),
            )
            summary(
                "sandbox Table includeObject=Object",
                timed(
                    lambda: http.get(
                        path, params={"includeObject": "Object"}, headers={"Accept": TABLE}
                    ),
                    repetitions,
                ),
            )

        async def bare(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        baseline_app = web.Application()
        baseline_app.router.add_get("/bare", bare)
        runner = web.AppRunner(baseline_app, access_log=None)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            base_median = summary(
                "baseline: bare aiohttp, same bytes", timed(lambda: http.get("/bare"), repetitions)
            )
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()
        print(
            f"ratio JSON/baseline {json_median / base_median:.2f}x, "
            f"Table/baseline {table_median / base_median:.2f}x"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
