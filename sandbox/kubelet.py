"""The kubelet's half of a pod's life, one transition per tick:

    Pending -> Running, started but not ready -> Ready
    Running -> CrashLoopBackOff (restartCount grows on a back-off) -> Running again once fixed
    Ready <-> not ready, as the readiness probe (the behaviour model) says
    deletionTimestamp set -> Killing event, then the pod is gone

Each transition writes what a real node would: events (Pulled, Created, Started, BackOff,
Unhealthy, Killing), container statuses, pod conditions, and the container logs and usage in the
runtime. Which transition a pod takes is decided by `Behaviour.for_pod`.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping
from typing import Any

from sandbox.behaviour import PodBehaviour
from sandbox.cluster import SandboxCluster
from sandbox.events import record_event
from sandbox.resources import NODE, POD
from sandbox.shapes import (
    container_id,
    image_id,
    is_ready,
    rfc3339,
    set_condition,
    unready_message,
)
from sandbox.store import NotFound, Obj
from sandbox.workload import program_of, start_log

# Back-off between restarts of a crashing container, in ticks (doubling, capped), standing in
# for the kubelet's 10 s doubling to 5 min.
_MAX_BACKOFF_TICKS = 8


def workload_of(pod: Mapping[str, Any]) -> str | None:
    """The Deployment or StatefulSet a pod belongs to, from its controller reference."""
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "StatefulSet":
            return str(ref["name"])
        if ref.get("kind") == "ReplicaSet":
            template_hash = pod["metadata"].get("labels", {}).get("pod-template-hash")
            suffix = f"-{template_hash}"
            name = str(ref["name"])
            return name[: -len(suffix)] if template_hash and name.endswith(suffix) else name
    return None


def _go_duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class Kubelet:
    def __init__(self, cluster: SandboxCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self._tick = 0
        self._next_restart: dict[str, int] = {}  # pod uid -> tick of the next restart
        self._known: set[str] = set()

    def step(self, now: float) -> None:
        self._tick += 1
        nodes = {n["metadata"]["name"] for n in self.cluster.store.list(NODE)[0]}
        pods, _ = self.cluster.store.list(POD)
        seen: set[str] = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            if pod["spec"].get("nodeName") not in nodes:
                continue  # unscheduled, or on a node the sandbox does not run: no kubelet
            try:
                self._advance(pod, now)
            except NotFound:  # deleted by a client between the list and the write
                continue
        for gone in self._known - seen:
            self.cluster.runtime.forget(gone)
            self.cluster.behaviour.forget_pod(gone)
            self._next_restart.pop(gone, None)
        self._known = seen

    def _advance(self, pod: Mapping[str, Any], now: float) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._kill(pod, now)
            return
        behaviour = self.cluster.behaviour.for_pod(meta["uid"], meta["namespace"], workload_of(pod))
        phase = pod.get("status", {}).get("phase")
        if phase == "Pending":
            self._start(pod, behaviour, now)
        elif phase == "Running":
            self._run(pod, behaviour, now)

    # -- transitions -------------------------------------------------------------------------
    def _start(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node = spec.get("nodeName")
        for c in spec["containers"]:
            path = f"spec.containers{{{c['name']}}}"
            for reason, message in (
                ("Pulled", f'Container image "{c["image"]}" already present on machine'),
                ("Created", f"Created container {c['name']}"),
                ("Started", f"Started container {c['name']}"),
            ):
                record_event(
                    self.cluster.store,
                    pod,
                    reason,
                    message,
                    now=now,
                    component="kubelet",
                    host=node,
                    field_path=path,
                )
            self._fresh_container(pod, c["name"], now)
        stamp = rfc3339(now)
        pod_ip = self._allocate_ip(node)

        def start(p: Obj) -> None:
            status = p["status"]
            status.update(phase="Running", podIP=pod_ip, podIPs=[{"ip": pod_ip}])
            set_condition(status["conditions"], "PodReadyToStartContainers", "True", "", "", stamp)
            for cs, c in zip(status["containerStatuses"], p["spec"]["containers"], strict=True):
                cs.update(
                    imageID=image_id(c["image"]),
                    containerID=container_id(self.rng),
                    started=True,
                    ready=False,
                    state={"running": {"startedAt": stamp}},
                )

        self.cluster.store.update(POD, meta["namespace"], meta["name"], start)
        if behaviour.crash_looping:
            self._crash(self._current(pod), behaviour, now)

    def _run(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        statuses = pod["status"].get("containerStatuses") or []
        waiting = any("waiting" in cs.get("state", {}) for cs in statuses)
        uid = pod["metadata"]["uid"]
        if waiting:
            if self._tick >= self._next_restart.get(uid, 0):
                if behaviour.crash_looping:
                    self._crash(pod, behaviour, now)
                else:
                    self._recover(pod, now)
            return
        if behaviour.crash_looping:
            self._crash(pod, behaviour, now)
            return
        self._set_usage(pod, behaviour)
        if is_ready(pod) != behaviour.ready:
            self._set_ready(pod, behaviour.ready, now)

    def _crash(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        """The container exits; the kubelet restarts it after a back-off."""
        meta, spec = pod["metadata"], pod["spec"]
        program = program_of(meta.get("labels") or {})
        lines = list(behaviour.crash_log or program.crash)
        restarts = max(cs["restartCount"] for cs in pod["status"]["containerStatuses"]) + 1
        backoff = _go_duration(min(10 * 2 ** (restarts - 1), 300))
        self._next_restart[meta["uid"]] = self._tick + min(2 ** (restarts - 1), _MAX_BACKOFF_TICKS)
        stamp = rfc3339(now)
        for c in spec["containers"]:
            self.cluster.runtime.append_log(meta["uid"], c["name"], *lines)
            self.cluster.runtime.restart_container(meta["uid"], c["name"], *lines)
            self.cluster.runtime.set_usage(meta["uid"], c["name"], cpu="0", memory="0")

        def crash(p: Obj) -> None:
            status = p["status"]
            for cs in status["containerStatuses"]:
                running = cs.get("state", {}).get("running", {})
                cs.update(
                    ready=False,
                    started=False,
                    restartCount=restarts,
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {backoff} restarting failed "
                            f"container={cs['name']} pod={meta['name']}_{meta['namespace']}"
                            f"({meta['uid']})",
                        }
                    },
                    lastState={
                        "terminated": {
                            "exitCode": behaviour.exit_code,
                            "reason": behaviour.exit_reason,
                            "startedAt": running.get("startedAt", stamp),
                            "finishedAt": stamp,
                            "containerID": cs.get("containerID", ""),
                        }
                    },
                )
            _set_ready_conditions(status, False, stamp)

        self.cluster.store.update(POD, meta["namespace"], meta["name"], crash)
        for c in spec["containers"]:
            record_event(
                self.cluster.store,
                pod,
                "BackOff",
                f"Back-off restarting failed container {c['name']} in pod "
                f"{meta['name']}_{meta['namespace']}({meta['uid']})",
                now=now,
                component="kubelet",
                host=spec.get("nodeName"),
                type_="Warning",
                field_path=f"spec.containers{{{c['name']}}}",
            )

    def _recover(self, pod: Mapping[str, Any], now: float) -> None:
        """The fix is in: the next restart stays up (ready on a later tick)."""
        meta = pod["metadata"]
        stamp = rfc3339(now)
        for c in pod["spec"]["containers"]:
            lines = start_log(meta.get("labels") or {}, meta["name"], now, now)
            self.cluster.runtime.restart_container(meta["uid"], c["name"], *lines)

        def recover(p: Obj) -> None:
            for cs in p["status"]["containerStatuses"]:
                cs.update(
                    restartCount=cs["restartCount"] + 1,
                    started=True,
                    containerID=container_id(self.rng),
                    state={"running": {"startedAt": stamp}},
                )

        self.cluster.store.update(POD, meta["namespace"], meta["name"], recover)

    def _set_ready(self, pod: Mapping[str, Any], ready: bool, now: float) -> None:
        meta = pod["metadata"]
        stamp = rfc3339(now)

        def flip(p: Obj) -> None:
            for cs in p["status"]["containerStatuses"]:
                cs["ready"] = ready
            _set_ready_conditions(p["status"], ready, stamp)

        self.cluster.store.update(POD, meta["namespace"], meta["name"], flip)
        if not ready:
            for c in pod["spec"]["containers"]:
                if c.get("readinessProbe"):
                    record_event(
                        self.cluster.store,
                        pod,
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        now=now,
                        component="kubelet",
                        host=pod["spec"].get("nodeName"),
                        type_="Warning",
                        field_path=f"spec.containers{{{c['name']}}}",
                    )

    def _kill(self, pod: Mapping[str, Any], now: float) -> None:
        meta = pod["metadata"]
        for c in pod["spec"]["containers"]:
            record_event(
                self.cluster.store,
                pod,
                "Killing",
                f"Stopping container {c['name']}",
                now=now,
                component="kubelet",
                host=pod["spec"].get("nodeName"),
                field_path=f"spec.containers{{{c['name']}}}",
            )
        self.cluster.store.delete(POD, meta["namespace"], meta["name"])

    # -- helpers -----------------------------------------------------------------------------
    def _current(self, pod: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = pod["metadata"]
        return self.cluster.store.get(POD, meta["namespace"], meta["name"]) or pod

    def _fresh_container(self, pod: Mapping[str, Any], container: str, now: float) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        self.cluster.runtime.append_log(
            meta["uid"], container, *start_log(labels, meta["name"], now, now)
        )
        program = program_of(labels)
        self.cluster.runtime.set_usage(
            meta["uid"], container, cpu=program.cpu, memory=program.memory
        )

    def _set_usage(self, pod: Mapping[str, Any], behaviour: PodBehaviour) -> None:
        meta = pod["metadata"]
        program = program_of(meta.get("labels") or {})
        for c in pod["spec"]["containers"]:
            self.cluster.runtime.set_usage(
                meta["uid"],
                c["name"],
                cpu=behaviour.cpu or program.cpu,
                memory=behaviour.memory or program.memory,
            )

    def _allocate_ip(self, node_name: str | None) -> str:
        node = self.cluster.store.get(NODE, "", node_name or "")
        cidr = ipaddress.ip_network((node or {}).get("spec", {}).get("podCIDR", "10.244.9.0/24"))
        pods, _ = self.cluster.store.list(POD)
        used = {p.get("status", {}).get("podIP") for p in pods}
        for host in cidr.hosts():
            if str(host) not in used and int(host) - int(cidr.network_address) > 1:
                return str(host)
        raise RuntimeError(f"no free pod IP on {node_name}")


def _set_ready_conditions(status: Obj, ready: bool, stamp: str) -> None:
    message = unready_message(status.get("containerStatuses", []))
    for type_ in ("ContainersReady", "Ready"):
        if ready:
            set_condition(status["conditions"], type_, "True", "", "", stamp)
        else:
            set_condition(
                status["conditions"], type_, "False", "ContainersNotReady", message, stamp
            )
