"""Watch, logs, exec and metrics: the streaming and kubelet-backed parts of the API."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections import deque

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from sandbox.cluster import SandboxCluster
from sandbox.resources import DEPLOYMENT, POD
from sandbox.runtime import ExecResult
from sandbox.server import SandboxServer
from tests.sandbox.factories import NS, make_deployment, make_pod


def test_watch_replays_then_streams_and_ends(
    cluster: SandboxCluster, core: client.CoreV1Api
) -> None:
    cluster.store.create(POD, make_pod("a"))

    def later() -> None:
        time.sleep(0.2)
        cluster.store.create(POD, make_pod("b"))
        cluster.store.update(POD, NS, "a", lambda o: o["metadata"]["labels"].update(app="gone"))

    threading.Thread(target=later).start()
    w = watch.Watch()
    seen = [
        (
            e["type"],
            e["object"]["metadata"]["resourceVersion"]
            if e["type"] == "BOOKMARK"
            else e["object"].metadata.name,
        )
        for e in w.stream(
            core.list_namespaced_pod,
            NS,
            label_selector="app=api",
            timeout_seconds=1,
            allow_watch_bookmarks=True,
        )
    ]
    assert seen[:3] == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert seen[-1][0] == "BOOKMARK"


def test_watch_from_resource_version_and_expired(
    cluster: SandboxCluster,
    apps: client.AppsV1Api,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    listed = apps.list_namespaced_deployment(NS, field_selector="metadata.name=api")
    cluster.store.update(DEPLOYMENT, NS, "api", lambda o: o["status"].update(readyReplicas=1))
    events = list(
        watch.Watch().stream(
            apps.list_namespaced_deployment,
            NS,
            field_selector="metadata.name=api",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    )
    assert [(e["type"], e["object"].status.ready_replicas) for e in events] == [("MODIFIED", 1)]
    # A short change log (instead of CHANGE_LOG_SIZE updates) pushes the first change out.
    monkeypatch.setattr(cluster.store, "_log", deque(cluster.store._log, maxlen=3))
    for i in range(4):
        cluster.store.update(DEPLOYMENT, NS, "api", lambda o, i=i: o["status"].update(n=i))
    with httpx.Client(base_url=server.url) as http:
        r = http.get(
            f"/apis/apps/v1/namespaces/{NS}/deployments",
            params={"watch": "1", "resourceVersion": "1001", "timeoutSeconds": "1"},
        )
    assert '"code":410' in r.text and '"type":"ERROR"' in r.text


def test_logs_are_text_with_tail_and_previous(
    cluster: SandboxCluster, core: client.CoreV1Api
) -> None:
    uid = cluster.store.create(POD, make_pod("p", containers=("app", "side")))["metadata"]["uid"]
    cluster.runtime.append_log(uid, "app", "one", "two", "three")
    assert core.read_namespaced_pod_log("p", NS) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", NS, container="app", tail_lines=2) == "two\nthree\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", NS, previous=True)
    assert err.value.status == 400
    message = json.loads(err.value.body)["message"]
    assert message == 'previous terminated container "app" in pod "p" not found'
    cluster.runtime.restart_container(uid, "app", "fresh")
    assert core.read_namespaced_pod_log("p", NS, previous=True) == "one\ntwo\nthree\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", NS, container="nope")
    assert err.value.status == 400


# The client's preload mode never closes its websocket (kubernetes/stream/ws_client.py); the
# socket is collected below, inside this test, where its ResourceWarning is expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_exec_over_websocket(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    cluster.store.create(POD, make_pod("p"))
    cluster.runtime.add_exec_handler(
        lambda ns, pod, c, argv: (
            ExecResult(
                stdout="/dev/sda 91%\n", stderr="warn\n", exit_code=3 if argv[-1] == "fail" else 0
            )
            if argv[0] == "df"
            else None
        )
    )
    out = stream(
        core.connect_get_namespaced_pod_exec,
        "p",
        NS,
        command=["df", "-h"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    assert "/dev/sda 91%" in out
    gc.collect()
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "p",
        NS,
        command=["df", "fail"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=5)
    assert resp.read_stdout() == "/dev/sda 91%\n"
    assert resp.read_stderr() == "warn\n"
    assert resp.returncode == 3
    resp.close()


def test_exec_without_upgrade_is_400(cluster: SandboxCluster, server: SandboxServer) -> None:
    cluster.store.create(POD, make_pod("p"))
    with httpx.Client(base_url=server.url) as http:
        r = http.get(f"/api/v1/namespaces/{NS}/pods/p/exec", params={"command": "ls"})
    assert (r.status_code, r.json()["message"]) == (400, "Upgrade request required")


def test_pod_metrics(cluster: SandboxCluster, api_client: client.ApiClient) -> None:
    uid = cluster.store.create(POD, make_pod("p"))["metadata"]["uid"]
    cluster.store.create(POD, make_pod("pending", phase="Pending"))
    cluster.store.create(POD, make_pod("other", labels={"app": "web"}))
    cluster.runtime.set_usage(uid, "app", cpu="912m", memory="301Mi")
    custom = client.CustomObjectsApi(api_client)
    metrics = custom.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", NS, "pods", label_selector="app=api"
    )
    assert metrics["kind"] == "PodMetricsList"
    assert [(m["metadata"]["name"], m["containers"][0]["usage"]) for m in metrics["items"]] == [
        ("p", {"cpu": "912m", "memory": "301Mi"})
    ]
    one = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods", "p")
    assert one["window"] == "15s"
