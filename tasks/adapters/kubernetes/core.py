"""core/v1 (and metrics.k8s.io): pods, their logs, events, exec, deletes, claims, Services and
Endpoints.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from tasks.adapters import wire
from tasks.adapters.cluster import (
    DeletedPod,
    Endpoints,
    Event,
    ExecResult,
    PersistentVolumeClaim,
    Pod,
    PodDescription,
    PodRow,
    PodUsage,
    Service,
)
from tasks.adapters.errors import PermanentError
from tasks.adapters.events import sort_events
from tasks.adapters.exec_commands import ExecCommand, require_declared
from tasks.adapters.kubernetes.client import (
    PREVIOUS_LOG_MISSING,
    ApiCalls,
    calling,
    channel_text,
    classify,
    close_websocket,
    dry_run_query,
    exec_exit_code,
    is_not_found,
    status_body,
)


class CoreCalls(ApiCalls):
    def pods(self, namespace: str, selector: str | None = None) -> tuple[Pod, ...]:
        """`kubectl get pods -n NS [-l SELECTOR] -o wide`, in the server's order (paged)."""
        return self._paged(
            f"list pods in {namespace}",
            partial(self._core.list_namespaced_pod, namespace),
            wire.pod,
            label_selector=selector or None,
        )

    def pod_rows(self, namespace: str, selector: str | None = None) -> tuple[PodRow, ...]:
        """The same LIST as `pods`, as rows: what a sweep over thousands of pods reads."""
        return self._paged(
            f"list pods in {namespace}",
            partial(self._core.list_namespaced_pod, namespace),
            wire.pod_row,
            label_selector=selector or None,
        )

    def _raw_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read_or_none(
            f"read pod {namespace}/{name}",
            lambda: self._core.read_namespaced_pod(name, namespace, _request_timeout=self._timeout),
        )

    def pod(self, namespace: str, name: str) -> Pod | None:
        raw = self._raw_pod(namespace, name)
        return wire.pod(raw) if raw is not None else None

    def _events(self, namespace: str, field_selector: str | None) -> list[Event]:
        with calling(f"list events in {namespace}"):
            raw = self._core.list_namespaced_event(
                namespace, field_selector=field_selector or None, _request_timeout=self._timeout
            )
            return [wire.event(e) for e in self._items(raw)]

    def describe_pod(self, namespace: str, name: str) -> PodDescription | None:
        """`kubectl describe pod`: conditions, container states, and the pod's own events."""
        raw = self._raw_pod(namespace, name)
        if raw is None:
            return None
        pod = wire.pod(raw)
        selector = (
            f"involvedObject.name={name},involvedObject.namespace={namespace},"
            f"involvedObject.uid={pod.uid}"
        )
        return PodDescription(
            pod=pod,
            conditions=wire.conditions((raw.get("status") or {}).get("conditions")),
            init_containers=wire.init_container_statuses(raw),
            containers=pod.container_statuses,
            events=tuple(sort_events(self._events(namespace, selector))),
        )

    def pod_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
    ) -> str | None:
        """`kubectl logs POD [--previous] [--tail N]`.

        None when the pod is gone, or when `previous` is asked and no container has terminated
        yet (the server's 400 "previous terminated container ... not found").
        """
        if container is None:
            pod = self.pod(namespace, name)
            if pod is None:
                return None
            container = pod.default_container
        return self._logs(namespace, name, container, tail, previous, since_seconds)

    def _logs(
        self,
        namespace: str,
        name: str,
        container: str | None,
        tail: int | None,
        previous: bool,
        since_seconds: int | None = None,
    ) -> str | None:
        kwargs: dict[str, Any] = {}
        if container:
            kwargs["container"] = container
        if tail is not None:
            kwargs["tail_lines"] = tail
        if previous:
            kwargs["previous"] = True
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        try:
            text = self._core.read_namespaced_pod_log(
                name, namespace, _request_timeout=self._timeout, **kwargs
            )
        except Exception as exc:
            if is_not_found(exc):
                return None
            if isinstance(exc, ApiException) and exc.status == 400 and previous:
                message, _ = status_body(exc)
                if PREVIOUS_LOG_MISSING.search(message):
                    return None
            raise classify(exc, f"read log of pod {namespace}/{name}") from exc
        if isinstance(text, bytes):
            return text.decode("utf-8", "replace")
        return str(text) if text is not None else ""

    def events(self, namespace: str, field_selector: str | None = None) -> tuple[Event, ...]:
        """`kubectl get events --sort-by=.lastTimestamp`: oldest first, undated first."""
        return tuple(sort_events(self._events(namespace, field_selector)))

    def top_pods(
        self,
        namespace: str,
        selector: str | None = None,
        sort_by: Literal["cpu", "memory"] | None = None,
    ) -> tuple[PodUsage, ...]:
        """`kubectl top pods [--sort-by=cpu|memory]` from metrics.k8s.io/v1beta1 (largest first)."""
        with calling(f"list pod metrics in {namespace}"):
            raw: Any = self._custom.list_namespaced_custom_object(
                "metrics.k8s.io",
                "v1beta1",
                namespace,
                "pods",
                label_selector=selector or None,
                _request_timeout=self._timeout,
            )
            usage = [wire.pod_usage(i) for i in (raw or {}).get("items") or []]
        if sort_by == "cpu":
            usage.sort(key=lambda u: u.cpu_millicores, reverse=True)
        elif sort_by == "memory":
            usage.sort(key=lambda u: u.memory_bytes, reverse=True)
        return tuple(usage)

    def delete_pod(self, namespace: str, name: str, *, dry_run: bool) -> DeletedPod | None:
        """`kubectl delete pod NAME`; None when it was already gone."""
        try:
            raw = self._json(
                self._core.delete_namespaced_pod(
                    name,
                    namespace,
                    propagation_policy="Background",
                    _request_timeout=self._timeout,
                    dry_run=dry_run_query(dry_run),
                )
            )
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise classify(exc, f"delete pod {namespace}/{name}") from exc
        deleted = (
            wire.pod(raw) if isinstance(raw, dict) and raw.get("kind", "Pod") == "Pod" else None
        )
        return DeletedPod(
            name=name,
            namespace=namespace,
            uid=deleted.uid if deleted else "",
            node=deleted.node if deleted else None,
            phase=deleted.phase if deleted else None,
            dry_run=dry_run,
        )

    def delete_pods(
        self, namespace: str, selector: str, *, dry_run: bool
    ) -> tuple[DeletedPod, ...]:
        """`kubectl delete pod -l SELECTOR`: list, then delete each (no deletecollection).

        A pod that vanished between the list and its delete is skipped, not an error.
        """
        if not selector.strip():
            raise PermanentError("refusing to delete pods with an empty selector")
        deleted = []
        for pod in self.pods(namespace, selector):
            gone = self.delete_pod(namespace, pod.name, dry_run=dry_run)
            if gone is not None:
                deleted.append(gone.model_copy(update={"uid": gone.uid or pod.uid}))
        return tuple(deleted)

    def exec(
        self,
        namespace: str,
        pod: str,
        command: ExecCommand,
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult:
        """`kubectl exec POD -- COMMAND` over the WebSocket channel protocol.

        Only a declared command (`tasks.adapters.exec_commands`) is sent: anything else is
        refused here, before a connection is made. A secret the command carries is written on
        stdin, never on the argv. stdout and stderr are collected until the server closes the
        stream or `timeout` passes; the exit code comes from the channel-3 Status (None if it
        never arrived).
        """
        require_declared(command)
        argv = command.argv
        if container is None:
            found = self._require(self.pod(namespace, pod), "pod", namespace, pod)
            container = found.default_container
        kwargs: dict[str, Any] = {"container": container} if container else {}
        with calling(f"exec in pod {namespace}/{pod}"):
            resp = stream(
                self._exec_core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=list(argv),
                stderr=True,
                stdin=command.stdin is not None,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=self._timeout,
                **kwargs,
            )
        try:
            with calling(f"exec in pod {namespace}/{pod}"):
                if command.stdin is not None:
                    resp.write_stdin(command.stdin.get_secret_value() + "\n")
                resp.run_forever(timeout=timeout)
                timed_out = resp.is_open()
                stdout = channel_text(resp.read_channel(1))
                stderr = channel_text(resp.read_channel(2))
                exit_code = None if timed_out else exec_exit_code(resp)
        finally:
            close_websocket(resp)
        return ExecResult(
            namespace=namespace,
            pod=pod,
            container=container,
            command=argv,
            stdout=stdout,
            stderr=stderr,
            exit_code=exit_code,
            timed_out=timed_out,
        )

    def pvc(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        raw = self._read_or_none(
            f"read pvc {namespace}/{name}",
            lambda: self._core.read_namespaced_persistent_volume_claim(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.pvc(raw) if raw is not None else None

    def pvcs(
        self, namespace: str, selector: str | None = None
    ) -> tuple[PersistentVolumeClaim, ...]:
        with calling(f"list pvcs in {namespace}"):
            raw = self._core.list_namespaced_persistent_volume_claim(
                namespace, label_selector=selector or None, _request_timeout=self._timeout
            )
            return tuple(wire.pvc(i) for i in self._items(raw))

    def endpoints(self, namespace: str, name: str) -> Endpoints | None:
        raw = self._read_or_none(
            f"read endpoints {namespace}/{name}",
            lambda: self._core.read_namespaced_endpoints(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.endpoints(raw) if raw is not None else None

    def all_endpoints(self, namespace: str) -> tuple[Endpoints, ...]:
        """`kubectl get endpoints -n NS`: every Service's Endpoints, LISTed in pages."""
        return self._paged(
            f"list endpoints in {namespace}",
            partial(self._core.list_namespaced_endpoints, namespace),
            wire.endpoints,
        )

    def service(self, namespace: str, name: str) -> Service | None:
        raw = self._read_or_none(
            f"read service {namespace}/{name}",
            lambda: self._core.read_namespaced_service(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.service(raw) if raw is not None else None

    def services(self, namespace: str) -> tuple[Service, ...]:
        with calling(f"list services in {namespace}"):
            raw = self._core.list_namespaced_service(namespace, _request_timeout=self._timeout)
            return tuple(wire.service(i) for i in self._items(raw))
