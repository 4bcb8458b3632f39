"""The kubelet's half of a pod's life, one transition per tick:

    Pending -> Running, started but not ready -> Ready
    Ready <-> not ready, as the readiness probe (the behaviour model) says
    deletionTimestamp set -> Killing event, not ready, Terminating for the grace period -> gone

and, for a container that keeps crashing, the real kubelet's cycle (`CrashCycle` times it):

    running (STATUS Running, restartCount n, Ready only if it has no readiness probe)
      -> terminated (STATUS Error or OOMKilled: exitCode, reason, startedAt, finishedAt)
      -> waiting CrashLoopBackOff ("back-off 20s restarting failed container", BackOff event,
         lastState.terminated = that crash), the back-off doubling up to its cap
      -> restarted: running again with restartCount n+1 (Pulled, Created, Started events)

so a crash-looping pod is not in CrashLoopBackOff at every instant: a probe that looks at one
moment may see it Running or Error, as on a real cluster. A container whose fix is in (a healthy
behaviour) still waits out its back-off, then stays up.

Each transition writes what a real node would: events, container statuses, pod conditions, and
the container logs and usage in the runtime. Which transition a pod takes is decided by
`Behaviour.for_pod`; deletion itself is the API server's (`sandbox.termination`).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping
from typing import Any

from sandbox.behaviour import PodBehaviour, backoff_seconds
from sandbox.cluster import SandboxCluster
from sandbox.events import container_event
from sandbox.resources import NODE, POD
from sandbox.shapes import (
    container_id,
    has_readiness_probe,
    image_id,
    is_ready,
    rfc3339,
    set_condition,
    unready_message,
)
from sandbox.store import NotFound, Obj
from sandbox.termination import termination_ticks
from sandbox.workload import program_of, start_log


def _go_duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _state(pod: Mapping[str, Any]) -> str:
    """`running`, `terminated` or `waiting`: the first container's (the sandbox's pods have one,
    and every container of a pod shares its behaviour)."""
    statuses = pod["status"].get("containerStatuses") or [{}]
    return str(next(iter(statuses[0].get("state") or {"waiting": {}})))


class Kubelet:
    def __init__(self, cluster: SandboxCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self._tick = 0
        # pod uid -> tick at which the crash cycle's current phase ends (the running container
        # dies, the back-off is over)
        self._due: dict[str, int] = {}
        self._removal: dict[str, int] = {}  # terminating pod uid -> tick it is removed
        self._known: set[str] = set()

    def step(self, now: float) -> None:
        self._tick += 1
        nodes = {n["metadata"]["name"] for n in self.cluster.store.list(NODE)[0]}
        jobs = self.cluster.jobs
        if jobs is not None:
            jobs.step(now)
        pods, _ = self.cluster.store.list(POD)
        seen: set[str] = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            if pod["spec"].get("nodeName") not in nodes:
                continue  # unscheduled, or on a node the sandbox does not run: no kubelet
            if jobs is not None and jobs.runs(pod):
                continue  # a real process, which sandbox.jobs follows
            try:
                self._advance(pod, now)
            except NotFound:  # deleted by a client between the list and the write
                continue
        for gone in self._known - seen:
            self.cluster.runtime.forget(gone)
            self.cluster.behaviour.forget_pod(gone)
            self._due.pop(gone, None)
            self._removal.pop(gone, None)
        self._known = seen

    def _advance(self, pod: Mapping[str, Any], now: float) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod, now)
            return
        behaviour = self.cluster.behaviour.of(pod)
        phase = pod.get("status", {}).get("phase")
        if phase == "Pending":
            self._start(pod, behaviour, now)
        elif phase == "Running":
            self._run(pod, behaviour, now)

    def _run(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        uid = pod["metadata"]["uid"]
        due = self._due.get(uid)
        state = _state(pod)
        if state == "terminated":
            self._back_off(pod, now)
        elif state == "waiting":
            if due is None or self._tick >= due:
                self._restart(pod, behaviour, now)
        elif behaviour.crash_looping:
            if due is None or self._tick >= due:  # a healthy container that breaks dies now
                self._die(pod, behaviour, now)
                return
            self._set_usage(pod, behaviour)
            if is_ready(pod) == has_readiness_probe(pod):
                self._set_ready(pod, not has_readiness_probe(pod), now)
        else:
            self._due.pop(uid, None)
            self._set_usage(pod, behaviour)
            if is_ready(pod) != behaviour.ready:
                self._set_ready(pod, behaviour.ready, now)

    # -- transitions -------------------------------------------------------------------------
    def _start(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        self._container_events(pod, now, pulled="already present on machine")
        for c in spec["containers"]:
            self._fresh_container(pod, c["name"], now)
        stamp = rfc3339(now)
        pod_ip = self._allocate_ip(spec.get("nodeName"))

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
            self._due[meta["uid"]] = self._tick + self.cluster.behaviour.crash_cycle.run_ticks

    def _die(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        """The container exits with an error; kubectl shows Error (or OOMKilled) until the
        kubelet notices and backs off."""
        meta = pod["metadata"]
        lines = list(behaviour.crash_log or program_of(meta.get("labels") or {}).crash)
        for c in pod["spec"]["containers"]:
            self.cluster.runtime.append_log(meta["uid"], c["name"], *lines)
            self.cluster.runtime.set_usage(meta["uid"], c["name"], cpu="0", memory="0")
        stamp = rfc3339(now)

        def die(p: Obj) -> None:
            for cs in p["status"]["containerStatuses"]:
                running = cs.get("state", {}).get("running") or {}
                cs.update(
                    ready=False,
                    started=False,
                    state={
                        "terminated": {
                            "exitCode": behaviour.exit_code,
                            "reason": behaviour.exit_reason,
                            "startedAt": running.get("startedAt", stamp),
                            "finishedAt": stamp,
                            "containerID": cs.get("containerID", ""),
                        }
                    },
                )
            _set_ready_conditions(p["status"], False, stamp)

        self.cluster.store.update(POD, meta["namespace"], meta["name"], die)
        self._due[meta["uid"]] = self._tick + 1

    def _back_off(self, pod: Mapping[str, Any], now: float) -> None:
        """The dead container becomes lastState; the kubelet waits before restarting it."""
        meta, spec = pod["metadata"], pod["spec"]
        crashes = max(cs["restartCount"] for cs in pod["status"]["containerStatuses"]) + 1
        backoff = _go_duration(backoff_seconds(crashes))
        cycle = self.cluster.behaviour.crash_cycle
        self._due[meta["uid"]] = self._tick + cycle.backoff_ticks(crashes)

        def back_off(p: Obj) -> None:
            for cs in p["status"]["containerStatuses"]:
                cs.update(
                    lastState={"terminated": cs["state"]["terminated"]},
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {backoff} restarting failed "
                            f"container={cs['name']} pod={meta['name']}_{meta['namespace']}"
                            f"({meta['uid']})",
                        }
                    },
                )

        self.cluster.store.update(POD, meta["namespace"], meta["name"], back_off)
        for c in spec["containers"]:
            self.cluster.runtime.retire_log(meta["uid"], c["name"])
            container_event(
                self.cluster.store,
                pod,
                c["name"],
                "BackOff",
                f"Back-off restarting failed container {c['name']} in pod "
                f"{meta['name']}_{meta['namespace']}({meta['uid']})",
                now=now,
                type_="Warning",
            )

    def _restart(self, pod: Mapping[str, Any], behaviour: PodBehaviour, now: float) -> None:
        """The back-off is over: a new container starts (restartCount + 1). One that will crash
        again has printed nothing yet; one whose fix is in starts as usual, ready a tick later.
        A container without a readiness probe is Ready as soon as it runs."""
        meta = pod["metadata"]
        uid = meta["uid"]
        stamp = rfc3339(now)
        crashing = behaviour.crash_looping
        self._container_events(pod, now, pulled="already present on machine")
        program = program_of(meta.get("labels") or {})
        for c in pod["spec"]["containers"]:
            lines = [] if crashing else start_log(meta.get("labels") or {}, meta["name"], now, now)
            self.cluster.runtime.new_log(uid, c["name"], *lines)
            self.cluster.runtime.set_usage(uid, c["name"], cpu=program.cpu, memory=program.memory)
        ready = crashing and not has_readiness_probe(pod)

        def restart(p: Obj) -> None:
            for cs in p["status"]["containerStatuses"]:
                cs.update(
                    restartCount=cs["restartCount"] + 1,
                    started=True,
                    ready=ready,
                    containerID=container_id(self.rng),
                    state={"running": {"startedAt": stamp}},
                )
            _set_ready_conditions(p["status"], ready, stamp)

        self.cluster.store.update(POD, meta["namespace"], meta["name"], restart)
        if crashing:
            self._due[uid] = self._tick + self.cluster.behaviour.crash_cycle.run_ticks
        else:
            self._due.pop(uid, None)

    def _set_ready(
        self, pod: Mapping[str, Any], ready: bool, now: float, *, probe_failed: bool = True
    ) -> None:
        """Flip readiness; a failing readiness probe says so in an Unhealthy event, a pod
        going unready because it is being stopped does not."""
        meta = pod["metadata"]
        stamp = rfc3339(now)

        def flip(p: Obj) -> None:
            for cs in p["status"]["containerStatuses"]:
                cs["ready"] = ready
            _set_ready_conditions(p["status"], ready, stamp)

        self.cluster.store.update(POD, meta["namespace"], meta["name"], flip)
        if not ready and probe_failed:
            for c in pod["spec"]["containers"]:
                if c.get("readinessProbe"):
                    container_event(
                        self.cluster.store,
                        pod,
                        c["name"],
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        now=now,
                        type_="Warning",
                    )

    def _terminate(self, pod: Mapping[str, Any], now: float) -> None:
        """SIGTERM on the first tick (Killing, the pod leaves its Endpoints), the pod gone once
        its grace period, scaled to ticks, is over."""
        meta = pod["metadata"]
        uid = meta["uid"]
        removal = self._removal.get(uid)
        if removal is not None:
            if self._tick >= removal:
                self.cluster.store.delete(POD, meta["namespace"], meta["name"])
            return
        grace = meta.get("deletionGracePeriodSeconds")
        # Listed this tick (and the one it was marked in, if a controller marked it): gone after
        # termination_ticks in all.
        self._removal[uid] = self._tick - 1 + termination_ticks(30 if grace is None else int(grace))
        if _state(pod) == "running":
            for c in pod["spec"]["containers"]:
                container_event(
                    self.cluster.store,
                    pod,
                    c["name"],
                    "Killing",
                    f"Stopping container {c['name']}",
                    now=now,
                )
        if is_ready(pod):
            self._set_ready(pod, False, now, probe_failed=False)

    # -- helpers -----------------------------------------------------------------------------
    def _container_events(self, pod: Mapping[str, Any], now: float, *, pulled: str) -> None:
        for c in pod["spec"]["containers"]:
            for reason, message in (
                ("Pulled", f'Container image "{c["image"]}" {pulled}'),
                ("Created", f"Created container {c['name']}"),
                ("Started", f"Started container {c['name']}"),
            ):
                container_event(self.cluster.store, pod, c["name"], reason, message, now=now)

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
