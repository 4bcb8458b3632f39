"""batch/v1 Jobs: the Job controller, and a kubelet for Job pods that runs their container as a
real local process.

The rest of the sandbox's pods are records the kubelet moves through scripted states. A Job's pod
is different: a Prefect Kubernetes worker submits each flow run as a Job, and the run only
happens if the pod's command really runs. So `attach(cluster)` hands Job pods to `Jobs`, which
the kubelet steps every tick and which leaves the kubelet's own model alone for every other pod:

    Job controller   one pod per Job from spec.template (labels job-name, controller-uid and
                     their batch.kubernetes.io/ forms, a controller ownerReference); status
                     active/ready/succeeded/failed, startTime, completionTime and the conditions
                     1.31+ write (SuccessCriteriaMet then Complete; FailureTarget then Failed,
                     BackoffLimitExceeded or DeadlineExceeded); a failed pod is replaced while
                     failures <= backoffLimit; ttlSecondsAfterFinished deletes a finished Job;
                     pods whose Job is gone are deleted, as the garbage collector would.
    Job pod kubelet  a scheduled pod's first container runs `command + args` (the image is not
                     real: the first word is looked up on this machine's PATH, the venv's bin
                     first) in its workingDir, with its env (values, and secretKeyRef from stored
                     Secrets) over a minimal base environment, in its own process group; its
                     output is the container log (`kubectl logs`); the pod is Running and Ready
                     while it runs, then Succeeded or Failed with the container's terminated
                     state and exit code. Deleting the pod (or its Job) sends SIGTERM to the
                     group and SIGKILL once the grace period is over; the pod goes when the
                     process has. `JobPods.kill` SIGKILLs a container outright (the OOM
                     killer, a node that kills it): exit 137, the pod Failed.

Processes are forked from the controllers' thread, so they get SIGTERM when the sandbox's
controllers stop (`die_with_parent`); `Jobs.stop` ends them for good (SIGTERM, grace, SIGKILL).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sandbox.cluster import SandboxCluster
from sandbox.events import container_event, record_event
from sandbox.processes import OWNER_ENV, ROLE_ENV, die_with_parent, kill_group, signal_group
from sandbox.resources import JOB, NODE, POD, SECRET
from sandbox.scheduler import schedule_pod
from sandbox.shapes import (
    container_id,
    controlled_by,
    image_id,
    name_suffix,
    rfc3339,
    set_condition,
)
from sandbox.store import NotFound, Obj
from sandbox.termination import deleted_at_once, grace_seconds, mark_terminating

log = logging.getLogger(__name__)

ROLE = "job-pod"
# Every process of a Job pod carries the pod's uid, as a container's processes share a cgroup:
# `prefect flow-run execute` starts the flow's engine in a session of its own, out of reach of
# the group signal, and it must still die with its container.
POD_ENV = "SANDBOX_JOB_POD"
DEFAULT_BACKOFF_LIMIT = 6
# What a container gets from its image besides its own env: enough to find programs and a home.
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def owning_job(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The controller ownerReference to a Job, if `obj` has one."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def _parse_time(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _finished(job: Mapping[str, Any]) -> str | None:
    """`Complete` or `Failed` once the Job has that condition."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def _terminate(cluster: SandboxCluster, pod: Mapping[str, Any], now: float) -> None:
    """Delete a pod as the API server would: gracefully if a kubelet still runs it."""
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    with contextlib.suppress(NotFound):
        if deleted_at_once(pod, grace_seconds(pod)):
            cluster.store.delete(POD, ns, name)
        elif not meta.get("deletionTimestamp"):
            cluster.store.update(
                POD, ns, name, lambda p: mark_terminating(p, grace_seconds(p), now)
            )


class JobController:
    """Pods for Jobs, Job status from its pods, TTL and garbage collection."""

    def __init__(self, cluster: SandboxCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng

    def step(self, now: float) -> None:
        jobs, _ = self.cluster.store.list(JOB)
        for job in jobs:
            try:
                self._sync(job, now)
            except NotFound:  # deleted by a client meanwhile
                continue
        self._collect_orphans({j["metadata"]["uid"] for j in jobs}, now)

    def _collect_orphans(self, live: set[str], now: float) -> None:
        """The garbage collector's part: a deleted Job's pods go too (background propagation)."""
        pods, _ = self.cluster.store.list(POD)
        for pod in pods:
            ref = owning_job(pod)
            if ref is not None and ref["uid"] not in live:
                _terminate(self.cluster, pod, now)

    def _sync(self, job: Mapping[str, Any], now: float) -> None:
        store = self.cluster.store
        meta, spec = job["metadata"], job["spec"]
        ns = meta["namespace"]
        status = job.get("status") or {}
        done = _finished(job)
        if done:
            ttl = spec.get("ttlSecondsAfterFinished")
            finished_at = _parse_time(
                status.get("completionTime")
                or next(c["lastTransitionTime"] for c in status["conditions"] if c["type"] == done)
            )
            if ttl is not None and finished_at is not None and now >= finished_at + int(ttl):
                store.delete(JOB, ns, meta["name"])
            return
        pods, _ = store.list(POD, ns, where=lambda p: controlled_by(p, meta["uid"]))
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = [
            p
            for p, phase in zip(pods, phases, strict=True)
            if phase not in ("Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")
        ]
        start = _parse_time(status.get("startTime")) or now
        backoff_limit = spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)
        deadline = spec.get("activeDeadlineSeconds")
        failure: tuple[str, str] | None = None
        if succeeded >= spec.get("completions", 1):
            pass
        elif failed > backoff_limit:
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and now - start >= int(deadline):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if failure is not None:
            for pod in active:
                _terminate(self.cluster, pod, now)
            active = []
        elif not active and succeeded < spec.get("completions", 1):
            active.append(self._create_pod(job, now))
        ready = sum(1 for p in active if (p.get("status") or {}).get("phase") == "Running")
        stamp = rfc3339(now)

        def write(j: Obj) -> None:
            st = j.setdefault("status", {})
            st.setdefault("startTime", rfc3339(start))
            st["uncountedTerminatedPods"] = {}
            for key, value in (
                ("active", len(active)),
                ("ready", ready),
                ("succeeded", succeeded),
                ("failed", failed),
            ):
                if value or key == "ready":  # omitempty, except ready (an int pointer)
                    st[key] = value
                else:
                    st.pop(key, None)
            conditions = st.setdefault("conditions", [])
            if failure is not None:
                set_condition(conditions, "FailureTarget", "True", *failure, stamp)
                set_condition(conditions, "Failed", "True", *failure, stamp)
            elif succeeded >= spec.get("completions", 1):
                reason = "CompletionsReached"
                message = "Reached expected number of succeeded pods"
                set_condition(conditions, "SuccessCriteriaMet", "True", reason, message, stamp)
                set_condition(conditions, "Complete", "True", reason, message, stamp)
                st["completionTime"] = stamp
            if not conditions:
                st.pop("conditions")

        store.update(JOB, ns, meta["name"], write)
        if failure is not None:
            record_event(
                store, job, failure[0], failure[1], now=now, component="job-controller",
                type_="Warning",
            )  # fmt: skip
        elif succeeded >= spec.get("completions", 1):
            record_event(
                store, job, "Completed", "Job completed", now=now, component="job-controller"
            )

    def _create_pod(self, job: Mapping[str, Any], now: float) -> Obj:
        meta = job["metadata"]
        uid, name = meta["uid"], meta["name"]
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        pod = schedule_pod(
            self.cluster,
            job["spec"]["template"],
            name=f"{name}-{name_suffix(self.rng)}",
            namespace=meta["namespace"],
            owner=job,
            extra_labels=labels,
            now=now,
        )
        record_event(
            self.cluster.store,
            job,
            "SuccessfulCreate",
            f"Created pod: {pod['metadata']['name']}",
            now=now,
            component="job-controller",
        )
        return pod


@dataclass
class _Container:
    uid: str
    namespace: str
    pod: str
    container: str
    proc: subprocess.Popen[bytes]
    started: str
    grace: int = 30
    kill_at: float | None = None  # set once SIGTERM was sent
    reader: threading.Thread | None = field(default=None, repr=False)


class JobPods:
    """The kubelet for Job pods: each one's first container is a real local process."""

    def __init__(self, cluster: SandboxCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self._running: dict[str, _Container] = {}  # by pod uid
        self._lock = threading.Lock()
        self._closed = False

    def step(self, now: float) -> None:
        with self._lock:
            if self._closed:
                return
            nodes = {n["metadata"]["name"] for n in self.cluster.store.list(NODE)[0]}
            pods, _ = self.cluster.store.list(POD, where=lambda p: owning_job(p) is not None)
            seen = set()
            for pod in pods:
                seen.add(pod["metadata"]["uid"])
                if pod["spec"].get("nodeName") not in nodes:
                    continue
                try:
                    self._advance(pod, now)
                except NotFound:
                    continue
            for uid in [u for u in self._running if u not in seen]:  # removed by force
                _kill_container(self._running.pop(uid))

    def _advance(self, pod: Mapping[str, Any], now: float) -> None:
        uid = pod["metadata"]["uid"]
        running = self._running.get(uid)
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp"):
            self._stop(pod, running, now)
        elif running is not None and running.proc.poll() is not None:
            self._exited(pod, running, now)
        elif phase == "Pending" and running is None:
            self._start(pod, now)

    # -- transitions -------------------------------------------------------------------------
    def _start(self, pod: Mapping[str, Any], now: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        c = spec["containers"][0]
        try:
            env = {**self._env(meta["namespace"], c.get("env") or []), POD_ENV: meta["uid"]}
        except LookupError as exc:  # the kubelet retries until the Secret is there
            self._waiting(pod, "CreateContainerConfigError", str(exc))
            return
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        stamp = rfc3339(now)
        try:
            if not argv:
                raise FileNotFoundError("no command: the sandbox has no image entrypoint to run")
            argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
            proc = subprocess.Popen(
                argv,
                cwd=_working_dir(c.get("workingDir")),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            self._cannot_run(pod, str(exc), now)
            return
        grace = grace_seconds(pod)
        uid = meta["uid"]
        running = _Container(uid, meta["namespace"], meta["name"], c["name"], proc, stamp, grace)
        running.reader = threading.Thread(
            target=self._read_output, args=(running,), name=f"log-{meta['name']}", daemon=True
        )
        running.reader.start()
        self._running[uid] = running
        pod_ip = _pod_ip(self.cluster, spec.get("nodeName"))
        cid = container_id(self.rng)

        def start(p: Obj) -> None:
            status = p["status"]
            status.update(phase="Running", podIP=pod_ip, podIPs=[{"ip": pod_ip}], startTime=stamp)
            for type_ in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"):
                set_condition(status["conditions"], type_, "True", "", "", stamp)
            status["containerStatuses"] = [
                {
                    **_status_base(p, cont),
                    "containerID": cid if cont is p["spec"]["containers"][0] else "",
                    "ready": cont is p["spec"]["containers"][0],
                    "started": cont is p["spec"]["containers"][0],
                    "state": {"running": {"startedAt": stamp}},
                }
                for cont in p["spec"]["containers"]
            ]

        self.cluster.store.update(POD, meta["namespace"], meta["name"], start)
        for reason, message in (
            ("Pulled", f'Container image "{c["image"]}" already present on machine'),
            ("Created", f"Created container {c['name']}"),
            ("Started", f"Started container {c['name']}"),
        ):
            self._event(pod, reason, message, now)

    def _exited(self, pod: Mapping[str, Any], running: _Container, now: float) -> None:
        del self._running[running.uid]
        _kill_container(running)  # when PID 1 of a container exits, the rest go with it
        if running.reader is not None:
            running.reader.join(timeout=2)  # the last lines are in the log before it is final
        self._finish(pod, running, now)

    def _finish(self, pod: Mapping[str, Any], running: _Container, now: float) -> None:
        code = running.proc.returncode
        exit_code = 128 - code if code < 0 else code  # killed by signal N: 128 + N
        stamp = rfc3339(now)

        def finish(p: Obj) -> None:
            status = p["status"]
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            for type_ in ("PodReadyToStartContainers", "ContainersReady", "Ready"):
                set_condition(status["conditions"], type_, "False", "PodCompleted", "", stamp)
            for cs in status["containerStatuses"]:
                cs.update(ready=False, started=False)
                if cs["name"] == running.container:
                    cs["state"] = {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Completed" if exit_code == 0 else "Error",
                            "startedAt": running.started,
                            "finishedAt": stamp,
                            "containerID": cs.get("containerID", ""),
                        }
                    }

        meta = pod["metadata"]
        self.cluster.store.update(POD, meta["namespace"], meta["name"], finish)

    def _stop(self, pod: Mapping[str, Any], running: _Container | None, now: float) -> None:
        """A deleted pod: SIGTERM, SIGKILL after the grace period, gone once the process is."""
        meta = pod["metadata"]
        if running is not None:
            if running.kill_at is None:
                grace = int(meta.get("deletionGracePeriodSeconds") or running.grace)
                running.kill_at = time.monotonic() + grace
                signal_group(running.proc, signal.SIGTERM)
                self._event(pod, "Killing", f"Stopping container {running.container}", now)
            if running.proc.poll() is None and time.monotonic() < running.kill_at:
                return
            self._exited(pod, running, now)
        self.cluster.store.delete(POD, meta["namespace"], meta["name"])

    def _waiting(self, pod: Mapping[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]

        def wait(p: Obj) -> None:
            p["status"]["containerStatuses"] = [
                {**_status_base(p, c), "state": {"waiting": {"reason": reason, "message": message}}}
                for c in p["spec"]["containers"]
            ]

        self.cluster.store.update(POD, meta["namespace"], meta["name"], wait)

    def _cannot_run(self, pod: Mapping[str, Any], message: str, now: float) -> None:
        """The runtime could not start the command (not found, bad workingDir): Failed, 128."""
        meta, stamp = pod["metadata"], rfc3339(now)
        self.cluster.runtime.append_log(meta["uid"], pod["spec"]["containers"][0]["name"], message)

        def fail(p: Obj) -> None:
            p["status"]["phase"] = "Failed"
            p["status"]["containerStatuses"] = [
                {
                    **_status_base(p, c),
                    "state": {
                        "terminated": {
                            "exitCode": 128,
                            "reason": "StartError",
                            "message": message,
                            "startedAt": stamp,
                            "finishedAt": stamp,
                        }
                    },
                }
                for c in p["spec"]["containers"]
            ]

        self.cluster.store.update(POD, meta["namespace"], meta["name"], fail)
        self._event(pod, "Failed", f"Error: {message}", now, type_="Warning")

    # -- helpers -----------------------------------------------------------------------------
    def _env(self, namespace: str, entries: list[Mapping[str, Any]]) -> dict[str, str]:
        base = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        # The image's own programs: this interpreter's bin directory (prefect, python) first.
        base["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
        base[OWNER_ENV], base[ROLE_ENV] = str(os.getpid()), ROLE
        for entry in entries:
            if "value" in entry:
                base[entry["name"]] = str(entry["value"])
            elif ref := (entry.get("valueFrom") or {}).get("secretKeyRef"):
                value = self._secret_value(namespace, ref)
                if value is not None:
                    base[entry["name"]] = value
        return base

    def _secret_value(self, namespace: str, ref: Mapping[str, Any]) -> str | None:
        secret = self.cluster.store.get(SECRET, namespace, ref.get("name", ""))
        data = (secret or {}).get("data") or {}
        string_data = (secret or {}).get("stringData") or {}
        if ref.get("key") in data:
            return base64.b64decode(data[ref["key"]]).decode()
        if ref.get("key") in string_data:
            return str(string_data[ref["key"]])
        if ref.get("optional"):
            return None
        what = f'secret "{ref.get("name")}" not found' if secret is None else (
            f"couldn't find key {ref.get('key')} in Secret {namespace}/{ref.get('name')}"
        )  # fmt: skip
        raise LookupError(what)

    def _read_output(self, running: _Container) -> None:
        """Copy the process's output into the container log, line by line, as it comes."""
        out: IO[bytes] | None = running.proc.stdout
        if out is None:
            return
        with out:
            for raw in out:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.cluster.runtime.append_log(running.uid, running.container, line)

    def _event(
        self, pod: Mapping[str, Any], reason: str, message: str, now: float, type_: str = "Normal"
    ) -> None:
        container = pod["spec"]["containers"][0]["name"]
        container_event(self.cluster.store, pod, container, reason, message, now=now, type_=type_)

    def pids(self) -> dict[str, int]:
        """Pod name -> pid of its running process."""
        with self._lock:
            return {c.pod: c.proc.pid for c in self._running.values()}

    def kill(self, pod: str) -> bool:
        """SIGKILL every process of the pod's container at once, as the OOM killer does to a
        container's cgroup: nothing in it gets to report. The next step finds the container
        exited 137 (`Error`) and the pod Failed. False if no such pod is running."""
        with self._lock:
            running = next((c for c in self._running.values() if c.pod == pod), None)
            if running is None:
                return False
            _kill_container(running)
            running.proc.wait(timeout=10)
            return True

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every process, wait out `grace`, SIGKILL what is left. Steps do nothing after."""
        with self._lock:
            self._closed = True
            running, self._running = list(self._running.values()), {}
        for c in running:
            signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            _kill_container(c)


class Jobs:
    """What the kubelet steps each tick for Jobs: the controller, then the Job pods."""

    def __init__(self, cluster: SandboxCluster, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.controller = JobController(cluster, rng)
        self.pods = JobPods(cluster, rng)

    def runs(self, pod: Mapping[str, Any]) -> bool:
        return owning_job(pod) is not None

    def step(self, now: float) -> None:
        self.controller.step(now)
        self.pods.step(now)
        # A pod that finished this tick counts in its Job's status without waiting a tick.
        self.controller.step(now)

    def stop(self) -> None:
        self.pods.stop()


def attach(cluster: SandboxCluster) -> Jobs:
    """Run the cluster's Jobs (from the next kubelet tick on); `stop()` the result to end them."""
    jobs = Jobs(cluster)
    cluster.jobs = jobs
    return jobs


def _kill_container(c: _Container) -> None:
    """SIGKILL the container's process group and every other process carrying its pod's uid."""
    kill_group(c.proc)
    tag = f"{POD_ENV}={c.uid}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if tag in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _status_base(pod: Mapping[str, Any], c: Mapping[str, Any]) -> Obj:
    return {
        "name": c["name"],
        "image": c["image"],
        "imageID": image_id(c["image"]),
        "restartCount": 0,
        "ready": False,
        "started": False,
    }


def _working_dir(path: str | None) -> str | None:
    """The container's workingDir if this machine has it (the image's /app does not exist)."""
    return path if path and Path(path).is_dir() else None


def _pod_ip(cluster: SandboxCluster, node: str | None) -> str:
    """A free address in the node's pod CIDR, as the kubelet's own allocation picks."""
    spec = (cluster.store.get(NODE, "", node or "") or {}).get("spec") or {}
    cidr = ipaddress.ip_network(spec.get("podCIDR", "10.244.9.0/24"))
    used = {(p.get("status") or {}).get("podIP") for p in cluster.store.list(POD)[0]}
    for host in cidr.hosts():
        if str(host) not in used and int(host) - int(cidr.network_address) > 1:
            return str(host)
    raise RuntimeError(f"no free pod IP on {node}")
