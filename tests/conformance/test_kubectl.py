"""The runbook's kubectl commands against the sandbox, read the way an operator reads them.

These run the real kubectl binary: they prove the sandbox is honest to the API that kubectl
speaks, so what an operator sees after `remediate sandbox up` is what a real cluster would show.
The control-plane log pipe (`| findstr workload_run`) is a shell filter, so its kubectl half is
covered by the `logs deploy/alphaswarm-cp` test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import injections
from sandbox.conditions import RDS_HOST
from sandbox.resources import POD
from sandbox.server import SandboxServer

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
if KUBECTL is None:  # a missing binary is a broken machine, not a reason to skip
    raise RuntimeError("kubectl must be on the PATH for the conformance tests")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """Seeded; parametrize indirectly with a tuple of condition names to seed it under them."""
    conditions: tuple[str, ...] = getattr(request, "param", ())
    with SandboxServer(tick_seconds=0.05, conditions=conditions) as server:
        yield server


@pytest.fixture
def kubectl(sandbox: SandboxServer, tmp_path: Path) -> Kubectl:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # a private discovery cache per sandbox
        "KUBECONFIG": str(kubeconfig),
        "NO_PROXY": "127.0.0.1,localhost",
    }

    def run(
        *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr}"
            )
        return done

    return run


def rows(output: str) -> list[list[str]]:
    """Table output split into cells (two or more spaces separate columns)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


# -- common diagnostics ------------------------------------------------------------------------


def test_get_pods_wide_in_both_namespaces(kubectl: Kubectl) -> None:
    table = rows(kubectl("get", "pods", "-n", "alphaswarm", "-o", "wide").stdout)
    assert table[0][:6] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"]
    assert "NODE" in table[0]
    by_name = {r[0]: r for r in table[1:]}
    core = [n for n in by_name if n.startswith("alphaswarm-core-")]
    assert len(core) == 3
    assert all(by_name[n][1] == "1/1" and by_name[n][2] == "Running" for n in core)
    assert any(n.startswith("alphaswarm-worker-") for n in by_name)
    assert "postgres-0" in by_name and "redis-master-0" in by_name
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", r[5]) for r in table[1:])

    admin = rows(kubectl("get", "pods", "-n", "alphaswarm-admin", "-o", "wide").stdout)
    assert [r[0].startswith("alphaswarm-cp-") for r in admin[1:]] == [True]


def test_get_pods_by_label(kubectl: Kubectl) -> None:
    table = rows(kubectl("get", "pods", "-n", "alphaswarm", "-l", "app=alphaswarm-core").stdout)
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(table) == 4 and all(r[0].startswith("alphaswarm-core-") for r in table[1:])


@pytest.mark.parametrize("column", ["cpu", "memory"])
def test_top_pods_sorted(kubectl: Kubectl, column: str) -> None:
    table = rows(kubectl("top", "pods", "-n", "alphaswarm", f"--sort-by={column}").stdout)
    assert table[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    values = [r[1] if column == "cpu" else r[2] for r in table[1:]]
    assert len(values) >= 8

    def amount(text: str) -> float:
        number, unit = re.fullmatch(r"(\d+)(\D*)", text).groups()  # type: ignore[union-attr]
        return int(number) * {"": 1000, "m": 1, "Mi": 1, "Gi": 1024, "Ki": 1 / 1024}[unit]

    assert [amount(v) for v in values] == sorted((amount(v) for v in values), reverse=True)


def test_events_sorted_by_last_timestamp(kubectl: Kubectl) -> None:
    out = kubectl("get", "events", "-n", "alphaswarm", "--sort-by=.lastTimestamp").stdout
    table = rows(out)
    assert table[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(r[2] == "Started" and r[3].startswith("pod/") for r in table[1:])
    raw = json.loads(kubectl("get", "events", "-n", "alphaswarm", "-o", "json").stdout)
    stamps = sorted(e["lastTimestamp"] for e in raw["items"] if e.get("lastTimestamp"))
    sorted_names = json.loads(
        kubectl(
            "get", "events", "-n", "alphaswarm", "--sort-by=.lastTimestamp", "-o", "json"
        ).stdout
    )["items"]
    assert [e["lastTimestamp"] for e in sorted_names if e.get("lastTimestamp")] == stamps


def test_api_log_tail(kubectl: Kubectl) -> None:
    done = kubectl("logs", "-n", "alphaswarm", "deploy/alphaswarm-core", "--tail=200")
    lines = done.stdout.splitlines()
    assert 0 < len(lines) <= 200
    assert re.search(r"Found \d+ pods, using pod/alphaswarm-core-", done.stderr)


def test_control_plane_log_has_workload_runs(kubectl: Kubectl) -> None:
    out = kubectl("logs", "-n", "alphaswarm-admin", "deploy/alphaswarm-cp", "--tail=200").stdout
    assert any("workload_run" in line for line in out.splitlines())


def test_terraform_runs_via_exec(kubectl: Kubectl) -> None:
    out = kubectl(
        "exec",
        "-n",
        "alphaswarm",
        "deploy/alphaswarm-core",
        "--",
        "python",
        "-m",
        "alphaswarm.cli",
        "runs",
        "list",
        "--limit",
        "20",
    ).stdout
    assert out.strip(), "runs list printed nothing"


# -- scenario A --------------------------------------------------------------------------------


def test_previous_logs_and_describe(kubectl: Kubectl, sandbox: SandboxServer) -> None:
    pods, _ = sandbox.cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-core")
    pod = pods[0]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]

    missing = kubectl("logs", "-n", "alphaswarm", name, "--previous", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr

    sandbox.cluster.runtime.restart_container(uid, "app", "booting again")
    sandbox.cluster.runtime.container(uid, "app").previous_log = ["Traceback: boom"]
    previous = kubectl("logs", "-n", "alphaswarm", name, "--previous").stdout
    assert previous.strip() == "Traceback: boom"

    described = kubectl("describe", "pod", "-n", "alphaswarm", name).stdout
    assert re.search(rf"^Name:\s+{name}$", described, re.M)
    assert re.search(r"^Namespace:\s+alphaswarm$", described, re.M)
    assert re.search(r"^Status:\s+Running$", described, re.M)
    events = described.split("Events:")[1]
    assert "Scheduled" in events and "Started" in events


def test_rollout_restart_then_status(kubectl: Kubectl, sandbox: SandboxServer) -> None:
    before = {
        p["metadata"]["name"]
        for p in sandbox.cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-core")[0]
    }
    out = kubectl("rollout", "restart", "-n", "alphaswarm", "deployment/alphaswarm-core").stdout
    assert out.strip() == "deployment.apps/alphaswarm-core restarted"
    status = kubectl(
        "rollout", "status", "-n", "alphaswarm", "deployment/alphaswarm-core", "--timeout=60s"
    ).stdout
    assert status.strip().splitlines()[-1] == 'deployment "alphaswarm-core" successfully rolled out'
    # As on a real cluster, "rolled out" may come while the last old pod is still Terminating.
    after = {
        p["metadata"]["name"]
        for p in sandbox.cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-core")[0]
        if not p["metadata"].get("deletionTimestamp")
    }
    assert len(after) == 3 and not (after & before)


def test_a_crash_looping_pod_as_kubectl_shows_it_tick_by_tick(
    kubectl: Kubectl, sandbox: SandboxServer
) -> None:
    sandbox.controllers.stop()  # each step below is one tick, then one look
    injections.inject(sandbox.cluster, "crashloop-single")
    (uid,) = sandbox.cluster.behaviour.pods
    (pod,) = sandbox.cluster.store.list(
        POD, "alphaswarm", where=lambda p: p["metadata"]["uid"] == uid
    )[0]
    name = pod["metadata"]["name"]
    seen = []
    for _ in range(8):
        sandbox.controllers.step()
        row = rows(kubectl("get", "pod", "-n", "alphaswarm", name).stdout)[1]
        seen.append((row[1], row[2], row[3].split(" ")[0]))  # READY, STATUS, RESTARTS
    assert seen == [
        ("0/1", "Error", "0"),
        ("0/1", "CrashLoopBackOff", "0"),
        ("0/1", "Running", "1"),  # restarted; it has a readiness probe, so not ready
        ("0/1", "Error", "1"),
        ("0/1", "CrashLoopBackOff", "1"),
        ("0/1", "CrashLoopBackOff", "1"),
        ("0/1", "Running", "2"),
        ("0/1", "Error", "2"),
    ]
    last = kubectl(
        "get", "pod", "-n", "alphaswarm", name, "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.reason}",
    ).stdout  # fmt: skip
    assert last == "Error"
    previous = kubectl("logs", "-n", "alphaswarm", name, "--previous").stdout
    assert "database disk image is malformed" in previous


def test_deleted_pod_is_terminating_then_its_statefulset_recreates_it(
    kubectl: Kubectl, sandbox: SandboxServer
) -> None:
    sandbox.controllers.stop()
    old_uid = sandbox.cluster.store.get(POD, "alphaswarm", "redis-master-0")["metadata"]["uid"]  # type: ignore[index]
    out = kubectl("-n", "alphaswarm", "delete", "pod", "redis-master-0", "--wait=false").stdout
    assert out.strip() == 'pod "redis-master-0" deleted'
    seen = []
    for _ in range(5):
        row = rows(kubectl("-n", "alphaswarm", "get", "pod", "redis-master-0").stdout)[1]
        uid = sandbox.cluster.store.get(POD, "alphaswarm", "redis-master-0")["metadata"]["uid"]  # type: ignore[index]
        seen.append((row[2], uid == old_uid))
        sandbox.controllers.step()
    # Terminating for three looks (grace 30 s), never beside its replacement, then a new pod.
    assert seen == [
        ("Terminating", True),
        ("Terminating", True),
        ("Terminating", True),
        ("ContainerCreating", False),
        ("Running", False),
    ]
    described = kubectl("-n", "alphaswarm", "get", "events", "--field-selector", "reason=Killing")
    assert "redis-master-0" in described.stdout


@pytest.mark.parametrize("sandbox", [("no-curl",)], indirect=True)
def test_no_curl_exec_fails_as_a_container_runtime_does(kubectl: Kubectl) -> None:
    done = kubectl(
        "exec", "-n", "alphaswarm", "deploy/alphaswarm-core", "--",
        "curl", "-fsS", "https://your-tenant.us.auth0.com/.well-known/jwks.json",
        check=False,
    )  # fmt: skip
    assert done.returncode == 126 and done.stdout == ""
    assert 'exec: "curl": executable file not found in $PATH' in done.stderr
    assert "command terminated with exit code 126" in done.stderr


@pytest.mark.parametrize("sandbox", [("managed-postgres",)], indirect=True)
def test_managed_postgres_is_an_external_name(kubectl: Kubectl) -> None:
    table = rows(kubectl("get", "svc", "-n", "alphaswarm", "postgres").stdout)
    assert table[1][:4] == ["postgres", "ExternalName", "<none>", RDS_HOST]
    done = kubectl("-n", "alphaswarm", "delete", "pod", "-l", "app=postgres")
    assert "No resources found" in done.stdout + done.stderr
    assert kubectl("-n", "alphaswarm", "get", "pvc", "-o", "name").stdout.split() == [
        "persistentvolumeclaim/redis-data-redis-master-0"
    ]


# -- scenario B --------------------------------------------------------------------------------


def test_describe_and_patch_hpa(kubectl: Kubectl) -> None:
    described = kubectl("describe", "hpa", "-n", "alphaswarm", "alphaswarm-core").stdout
    assert re.search(r"^Reference:\s+Deployment/alphaswarm-core$", described, re.M)
    assert re.search(r"^Min replicas:\s+3$", described, re.M)
    assert "SuccessfulRescale" in described.split("Events:")[1]

    payload = (
        '[{"op":"replace","path":"/spec/behavior/scaleUp/stabilizationWindowSeconds","value":300}]'
    )
    out = kubectl(
        "patch", "hpa", "-n", "alphaswarm", "alphaswarm-core", "--type=json", f"-p={payload}"
    ).stdout
    assert out.strip() == "horizontalpodautoscaler.autoscaling/alphaswarm-core patched"
    hpa = json.loads(
        kubectl("get", "hpa", "-n", "alphaswarm", "alphaswarm-core", "-o", "json").stdout
    )
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 300


def test_worker_log_task_lines(kubectl: Kubectl) -> None:
    out = kubectl("logs", "-n", "alphaswarm", "deploy/alphaswarm-worker", "--tail=500").stdout
    assert re.search(r"started|finished|FAILED|succeeded|received", out)


# -- scenario C --------------------------------------------------------------------------------


def test_celery_inspect_active_via_exec(kubectl: Kubectl) -> None:
    out = kubectl(
        "exec",
        "-n",
        "alphaswarm",
        "deploy/alphaswarm-worker",
        "--",
        "celery",
        "-A",
        "alphaswarm.tasks.celery_app",
        "inspect",
        "active",
    ).stdout
    assert "OK" in out or "empty" in out or "->" in out


def test_scale_workers_to_eight(kubectl: Kubectl, sandbox: SandboxServer) -> None:
    out = kubectl(
        "scale", "-n", "alphaswarm", "deployment/alphaswarm-worker", "--replicas=8"
    ).stdout
    assert out.strip() == "deployment.apps/alphaswarm-worker scaled"

    def running_workers() -> int:
        table = rows(
            kubectl("get", "pods", "-n", "alphaswarm", "-l", "app=alphaswarm-worker").stdout
        )
        return sum(1 for r in table[1:] if r[2] == "Running" and r[1] == "1/1")

    eventually(lambda: running_workers() == 8)


# -- scenario D --------------------------------------------------------------------------------


def test_set_env_keeps_other_variables(kubectl: Kubectl) -> None:
    def env() -> dict[str, str]:
        dep = json.loads(
            kubectl("get", "deploy", "-n", "alphaswarm", "alphaswarm-core", "-o", "json").stdout
        )
        container = dep["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in container.get("env", [])}

    before = env()
    assert before["ALPHASWARM_AUTH_ENFORCE"] != "permissive" and len(before) > 1
    out = kubectl(
        "set",
        "env",
        "-n",
        "alphaswarm",
        "deploy/alphaswarm-core",
        "ALPHASWARM_AUTH_ENFORCE=permissive",
    ).stdout
    assert out.strip() == "deployment.apps/alphaswarm-core env updated"
    assert env() == {**before, "ALPHASWARM_AUTH_ENFORCE": "permissive"}


def test_jwks_probe_via_exec(kubectl: Kubectl) -> None:
    out = kubectl(
        "exec",
        "-n",
        "alphaswarm",
        "deploy/alphaswarm-core",
        "--",
        "curl",
        "-fsS",
        "https://your-tenant.us.auth0.com/.well-known/jwks.json",
    ).stdout
    assert json.loads(out)["keys"]


# -- scenario E --------------------------------------------------------------------------------


def test_ingress_controller_pods_and_logs(kubectl: Kubectl) -> None:
    table = rows(kubectl("-n", "ingress-nginx", "get", "pods").stdout)
    assert any(
        r[0].startswith("ingress-nginx-controller-") and r[2] == "Running" for r in table[1:]
    )
    logs = kubectl("-n", "ingress-nginx", "logs", "deploy/ingress-nginx-controller", "--tail=200")
    assert logs.stdout.strip()


@pytest.mark.parametrize(
    ("namespace", "service"),
    [
        ("alphaswarm", "alphaswarm-client"),
        ("alphaswarm-admin", "alphaswarm-cp"),
    ],
)
def test_get_endpoints(kubectl: Kubectl, namespace: str, service: str) -> None:
    table = rows(kubectl("get", "endpoints", "-n", namespace, service).stdout)
    assert table[0] == ["NAME", "ENDPOINTS", "AGE"]
    assert table[1][0] == service
    assert re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:\d+,?)+( \+ \d+ more\.\.\.)?", table[1][1])


# -- scenario F --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("-l", "app=postgres"), ("redis-master-0",)])
def test_stateful_pod_delete_comes_back(
    kubectl: Kubectl, sandbox: SandboxServer, args: tuple[str, ...]
) -> None:
    name = "postgres-0" if args[0] == "-l" else "redis-master-0"
    old_uid = sandbox.cluster.store.get(POD, "alphaswarm", name)["metadata"]["uid"]  # type: ignore[index]
    out = kubectl("-n", "alphaswarm", "delete", "pod", *args).stdout
    assert out.strip() == f'pod "{name}" deleted'

    def back_and_ready() -> bool:
        pod = sandbox.cluster.store.get(POD, "alphaswarm", name)
        return bool(
            pod
            and pod["metadata"]["uid"] != old_uid
            and all(c["ready"] for c in pod["status"].get("containerStatuses", [{"ready": False}]))
        )

    eventually(back_and_ready)
    pod = json.loads(kubectl("-n", "alphaswarm", "get", "pod", name, "-o", "json").stdout)
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims
    pvc = json.loads(kubectl("-n", "alphaswarm", "get", "pvc", claims[0], "-o", "json").stdout)
    assert pvc["status"]["phase"] == "Bound"
