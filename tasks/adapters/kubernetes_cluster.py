"""`KubernetesCluster`: the `Cluster` protocol over the official `kubernetes` client.

This module and its siblings in tasks/adapters are the only code that imports `kubernetes`.
Each method makes the REST calls kubectl makes for the runbook's command (see
reference/kubernetes-wire.md), turns the answer into a frozen model from `cluster.py` at once,
and sorts failures into `TransientError` / `PermanentError`. Nothing here retries: urllib3's own
retries are switched off too, so one adapter call is one attempt and Prefect owns the policy.

Every mutation takes `dry_run`; when true the request carries `dryRun=All`, the server runs
admission and validation without persisting, and the result describes the would-be object.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream
from pydantic import ValidationError

from tasks.adapters import wire
from tasks.adapters.cluster import (
    RESTARTED_AT_ANNOTATION,
    DeletedPod,
    Deployment,
    DeploymentLogs,
    Endpoints,
    EndpointSlice,
    EnvChange,
    EnvVar,
    Event,
    ExecResult,
    HorizontalPodAutoscaler,
    HpaWindowChange,
    Ingress,
    NetworkPolicy,
    OwnerRef,
    PersistentVolumeClaim,
    Pod,
    PodDescription,
    PodDisruptionBudget,
    PodUsage,
    Rescale,
    RestartResult,
    RolloutState,
    RolloutStatus,
    ScalableKind,
    Scale,
    ScaleResult,
    Service,
    StatefulSet,
)
from tasks.adapters.errors import AdapterError, PermanentError, TransientError, error_for_status
from tasks.adapters.events import rescales, sort_events
from tasks.adapters.pod_order import pick_for_exec, pick_for_logs
from tasks.adapters.rollout import rollout_status
from tasks.settings import KubeAccess

T = TypeVar("T")

# Parts of the client without type hints, held as Any here so strict mypy stays strict elsewhere.
_config: Any = config
_watch: Any = watch

LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost", "::1")
DRY_RUN_ALL = "All"
MERGE_PATCH = "application/merge-patch+json"
_PREVIOUS_LOG_MISSING = re.compile(r"previous terminated container .* not found")
_HANDSHAKE_STATUS = re.compile(r"Handshake status (\d{3})")


# ---------------------------------------------------------------------------------------------
# Building a client


def _bypass_proxy_for_loopback(configuration: Any) -> None:
    """HTTP(S)_PROXY from the environment would otherwise carry 127.0.0.1 calls to the proxy."""
    entries = [e for e in (configuration.no_proxy or "").split(",") if e.strip()]
    entries += [h for h in LOOPBACK_NO_PROXY if h not in entries]
    configuration.no_proxy = ",".join(entries)


def _configuration() -> Any:
    configuration = client.Configuration()
    configuration.retries = False  # one call, one attempt: retries belong to Prefect
    _bypass_proxy_for_loopback(configuration)
    return configuration


def current_kubeconfig() -> str:
    """$KUBECONFIG as it is now (the client reads it once, at import), else ~/.kube/config."""
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def api_client_for(access: KubeAccess) -> Any:
    """An isolated ApiClient for `access`; the process-wide default is never touched."""
    configuration = _configuration()
    try:
        if access.in_cluster:
            _config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        path = str(access.kubeconfig) if access.kubeconfig is not None else current_kubeconfig()
        return _config.new_client_from_config(
            config_file=path,
            context=access.context,
            persist_config=False,
            client_configuration=configuration,
        )
    except (ConfigException, OSError) as exc:
        raise PermanentError(f"cannot load Kubernetes access: {exc}", operation="config") from exc


# ---------------------------------------------------------------------------------------------
# Errors


def _status_body(exc: ApiException) -> tuple[str, str | None]:
    """The server's Status message and reason, else whatever text the exception carries."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            return body.strip(), exc.reason
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"]), str(status.get("reason") or exc.reason or "") or None
    return str(exc.reason or "no response"), None


def _handshake_status(text: str) -> tuple[str, str | None] | None:
    """The Status document at the end of websocket-client's "Handshake status ..." text."""
    start = text.rfind('{"kind":"Status"')
    if start < 0:
        return None
    try:
        status = json.loads(text[start:])
    except ValueError:
        return None
    if not isinstance(status, dict) or not status.get("message"):
        return None
    return str(status["message"]), str(status.get("reason") or "") or None


def classify(exc: BaseException, operation: str) -> AdapterError:
    """Map a client-side failure to a TransientError or PermanentError, keeping the details."""
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, ApiException):
        message, reason = _status_body(exc)
        status = exc.status
        if not status:  # status 0: the WebSocket layer wraps a failed handshake this way
            text = str(exc.reason or "")
            found = _HANDSHAKE_STATUS.search(text)
            status = int(found.group(1)) if found else None
            message, reason = _handshake_status(text) or (message, reason)
        return error_for_status(status, message, reason=reason, operation=operation)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return TransientError(f"{type(exc).__name__}: {exc}", operation=operation)
    if isinstance(exc, ValidationError):
        return PermanentError(
            f"the server's answer does not fit the API schema: {exc}", operation=operation
        )
    return PermanentError(f"{type(exc).__name__}: {exc}", operation=operation)


@contextmanager
def _call(operation: str) -> Iterator[None]:
    try:
        yield
    except AdapterError:
        raise
    except Exception as exc:
        raise classify(exc, operation) from exc


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def rfc3339(moment: datetime) -> str:
    """Go's time.Format(RFC3339): seconds, and "Z" for UTC, else the local offset."""
    moment = moment.astimezone() if moment.tzinfo is None else moment
    offset = moment.utcoffset()
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return stamp + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{stamp}{sign}{hours:02d}:{mins:02d}"


def _dry_run(flag: bool) -> str | None:
    """The `dryRun` query value: "All" asks the server to validate without persisting."""
    return DRY_RUN_ALL if flag else None


# ---------------------------------------------------------------------------------------------
# The adapter


class KubernetesCluster:
    """The runbook's cluster calls through one isolated ApiClient. Close it (or use `with`)."""

    def __init__(
        self,
        access: KubeAccess | None = None,
        *,
        api_client: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        access = access or KubeAccess()
        self._api = api_client if api_client is not None else api_client_for(access)
        self._timeout = access.request_timeout_seconds
        self._clock = clock or (lambda: datetime.now().astimezone())
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._autoscaling = client.AutoscalingV2Api(self._api)
        self._networking = client.NetworkingV1Api(self._api)
        self._discovery = client.DiscoveryV1Api(self._api)
        self._policy = client.PolicyV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    # lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> KubernetesCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    # helpers ---------------------------------------------------------------------------------

    def _json(self, obj: Any) -> Any:
        """A client object back in the API's JSON form (camelCase keys, RFC 3339 strings)."""
        return self._api.sanitize_for_serialization(obj)

    def _items(self, obj: Any) -> list[dict[str, Any]]:
        body = self._json(obj) or {}
        return [i for i in body.get("items") or [] if isinstance(i, dict)]

    def _read_or_none(self, operation: str, read: Callable[[], Any]) -> Any | None:
        """One GET of a named object; 404 is an answer (None), not an error."""
        try:
            return self._json(read())
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise classify(exc, operation) from exc

    def _require(self, value: T | None, kind: str, namespace: str, name: str) -> T:
        if value is None:
            raise PermanentError(
                f'{kind} "{name}" not found in namespace "{namespace}"',
                status=404,
                reason="NotFound",
            )
        return value

    # pods ------------------------------------------------------------------------------------

    def pods(self, namespace: str, selector: str | None = None) -> tuple[Pod, ...]:
        """`kubectl get pods -n NS [-l SELECTOR] -o wide`, in the server's order."""
        with _call(f"list pods in {namespace}"):
            raw = self._core.list_namespaced_pod(
                namespace, label_selector=selector or None, _request_timeout=self._timeout
            )
            return tuple(wire.pod(p) for p in self._items(raw))

    def _raw_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read_or_none(
            f"read pod {namespace}/{name}",
            lambda: self._core.read_namespaced_pod(name, namespace, _request_timeout=self._timeout),
        )

    def pod(self, namespace: str, name: str) -> Pod | None:
        raw = self._raw_pod(namespace, name)
        return wire.pod(raw) if raw is not None else None

    def _events(self, namespace: str, field_selector: str | None) -> list[Event]:
        with _call(f"list events in {namespace}"):
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
            if _is_not_found(exc):
                return None
            if isinstance(exc, ApiException) and exc.status == 400 and previous:
                message, _ = _status_body(exc)
                if _PREVIOUS_LOG_MISSING.search(message):
                    return None
            raise classify(exc, f"read log of pod {namespace}/{name}") from exc
        if isinstance(text, bytes):
            return text.decode("utf-8", "replace")
        return str(text) if text is not None else ""

    def _deployment_pods(self, namespace: str, deployment: str) -> tuple[Deployment, list[Pod]]:
        found = self._require(
            self.deployment(namespace, deployment), "deployment", namespace, deployment
        )
        selector = found.selector.render()
        if not selector:
            raise PermanentError(f'deployment "{deployment}" has an empty selector')
        return found, list(self.pods(namespace, selector))

    def deployment_logs(
        self,
        namespace: str,
        deployment: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
    ) -> DeploymentLogs | None:
        """`kubectl logs deploy/X`: the pod kubectl's ByLogging order puts first, and its log.

        None when the Deployment does not exist; a Deployment without pods is a PermanentError,
        as it is for kubectl ("timed out waiting for the condition").
        """
        if self.deployment(namespace, deployment) is None:
            return None
        _, pods = self._deployment_pods(namespace, deployment)
        chosen = pick_for_logs(pods)
        if chosen is None:
            raise PermanentError(f'deployment "{deployment}" has no pods', operation="logs")
        use = container or chosen.default_container or ""
        return DeploymentLogs(
            namespace=namespace,
            deployment=deployment,
            pod=chosen.name,
            container=use,
            pods_found=len(pods),
            text=self._logs(namespace, chosen.name, use or None, tail, previous),
        )

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
        with _call(f"list pod metrics in {namespace}"):
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
                    dry_run=_dry_run(dry_run),
                )
            )
        except Exception as exc:
            if _is_not_found(exc):
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
        command: Sequence[str],
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult:
        """`kubectl exec POD -- COMMAND` over the WebSocket channel protocol.

        stdout and stderr are collected until the server closes the stream or `timeout` passes;
        the exit code comes from the channel-3 Status (None if it never arrived).
        """
        command = tuple(command)
        if not command:
            raise PermanentError("exec needs a command")
        if container is None:
            found = self._require(self.pod(namespace, pod), "pod", namespace, pod)
            container = found.default_container
        kwargs: dict[str, Any] = {"container": container} if container else {}
        with _call(f"exec in pod {namespace}/{pod}"):
            resp = stream(
                self._core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=list(command),
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=self._timeout,
                **kwargs,
            )
        try:
            with _call(f"exec in pod {namespace}/{pod}"):
                resp.run_forever(timeout=timeout)
                timed_out = resp.is_open()
                stdout = _text(resp.read_channel(1))
                stderr = _text(resp.read_channel(2))
                exit_code = None if timed_out else _exit_code(resp)
        finally:
            _close_websocket(resp)
        return ExecResult(
            namespace=namespace,
            pod=pod,
            container=container,
            command=command,
            stdout=stdout,
            stderr=stderr,
            exit_code=exit_code,
            timed_out=timed_out,
        )

    def exec_in_deployment(
        self,
        namespace: str,
        deployment: str,
        command: Sequence[str],
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> ExecResult:
        """`kubectl exec deploy/X -- COMMAND`: in the pod kubectl would attach to."""
        _, pods = self._deployment_pods(namespace, deployment)
        chosen = pick_for_exec(pods)
        if chosen is None:
            raise PermanentError(f'deployment "{deployment}" has no pods', operation="exec")
        return self.exec(
            namespace,
            chosen.name,
            command,
            container=container or chosen.default_container,
            timeout=timeout,
        )

    # workloads -------------------------------------------------------------------------------

    def _raw_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read_or_none(
            f"read deployment {namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    def deployment(self, namespace: str, name: str) -> Deployment | None:
        raw = self._raw_deployment(namespace, name)
        return wire.deployment(raw) if raw is not None else None

    def rollout_restart(self, namespace: str, name: str, *, dry_run: bool) -> RestartResult:
        """`kubectl rollout restart deployment/X`: the restartedAt annotation, as kubectl writes it.

        Refuses a paused Deployment (a human is mid-change) and a second restart within the
        same second (kubectl's empty-patch error, transient: it succeeds a second later).
        """
        before = self._require(self.deployment(namespace, name), "deployment", namespace, name)
        if before.paused:
            raise PermanentError(
                f'can\'t restart paused deployment "{name}" (run rollout resume first)',
                operation="rollout restart",
            )
        restarted_at = rfc3339(self._clock())
        if before.restarted_at == restarted_at:
            raise TransientError(
                f'deployment "{name}" was restarted within the past second; try again',
                operation="rollout restart",
            )
        body = {
            "spec": {
                "template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: restarted_at}}}
            }
        }
        with _call(f"rollout restart {namespace}/{name}"):
            after = wire.deployment(
                self._json(
                    self._apps.patch_namespaced_deployment(
                        name,
                        namespace,
                        body,
                        field_manager="kubectl-rollout",
                        _request_timeout=self._timeout,
                        dry_run=_dry_run(dry_run),
                    )
                )
            )
        return RestartResult(
            namespace=namespace,
            deployment=name,
            restarted_at=restarted_at,
            previous_restarted_at=before.restarted_at,
            previous_generation=before.generation,
            generation=after.generation,
            dry_run=dry_run,
        )

    def rollout_status(self, namespace: str, name: str) -> RolloutStatus | None:
        """One observation of `kubectl rollout status`; None when the Deployment is missing."""
        found = self.deployment(namespace, name)
        return rollout_status(found) if found is not None else None

    def wait_for_rollout(self, namespace: str, name: str, timeout: float) -> RolloutStatus:
        """`kubectl rollout status --timeout`: LIST, then WATCH until complete, failed or timeout.

        Returns the last observation: COMPLETE, FAILED (progress deadline exceeded), or still
        PENDING / PROGRESSING when the time ran out. A Deployment that disappears while being
        watched is a PermanentError, as it is for kubectl.
        """
        deadline = time.monotonic() + timeout
        selector = f"metadata.name={name}"
        operation = f"rollout status {namespace}/{name}"
        last: RolloutStatus | None = None
        while True:
            with _call(operation):
                listed = self._json(
                    self._apps.list_namespaced_deployment(
                        namespace, field_selector=selector, _request_timeout=self._timeout
                    )
                )
            items = [i for i in listed.get("items") or [] if isinstance(i, dict)]
            if not items:
                raise PermanentError(
                    f'deployment "{name}" not found in namespace "{namespace}"',
                    status=404,
                    reason="NotFound",
                    operation=operation,
                )
            last = rollout_status(wire.deployment(items[0]))
            if last.state in (RolloutState.COMPLETE, RolloutState.FAILED):
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return last
            version = str((listed.get("metadata") or {}).get("resourceVersion") or "") or None
            outcome = self._watch_rollout(namespace, name, version, remaining, operation)
            if outcome is not None:
                last = outcome
                if last.state in (RolloutState.COMPLETE, RolloutState.FAILED):
                    return last
            if deadline - time.monotonic() <= 0:
                return last

    def _watch_rollout(
        self, namespace: str, name: str, version: str | None, remaining: float, operation: str
    ) -> RolloutStatus | None:
        """Watch one stream; the last status seen, or None if it ended (or expired) quietly."""
        watcher = _watch.Watch()
        kwargs: dict[str, Any] = {"resource_version": version} if version else {}
        events = watcher.stream(
            self._apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={name}",
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, math.ceil(remaining)),
            _request_timeout=(self._timeout, remaining + self._timeout),
            deserialize=False,
            **kwargs,
        )
        last: RolloutStatus | None = None
        try:
            for event in events:
                kind = event.get("type")
                obj = event.get("object")
                if kind == "BOOKMARK" or not isinstance(obj, dict):
                    continue  # a bookmark only moves the resourceVersion on
                if kind == "DELETED":
                    raise PermanentError(
                        f'deployment "{name}" was deleted while waiting for its rollout',
                        operation=operation,
                    )
                last = rollout_status(wire.deployment(obj))
                if last.state in (RolloutState.COMPLETE, RolloutState.FAILED):
                    return last
        except ApiException as exc:
            if exc.status == 410:  # resourceVersion expired: the caller lists again
                return last
            raise classify(exc, operation) from exc
        except AdapterError:
            raise
        except Exception as exc:
            raise classify(exc, operation) from exc
        finally:
            watcher.stop()
            events.close()
        return last

    # scale -----------------------------------------------------------------------------------

    def _scale_calls(self, kind: ScalableKind) -> tuple[Callable[..., Any], Callable[..., Any]]:
        if kind == "Deployment":
            return (
                self._apps.read_namespaced_deployment_scale,
                self._apps.patch_namespaced_deployment_scale,
            )
        if kind == "StatefulSet":
            return (
                self._apps.read_namespaced_stateful_set_scale,
                self._apps.patch_namespaced_stateful_set_scale,
            )
        raise PermanentError(f"cannot scale a {kind}")

    def scale(self, namespace: str, kind: ScalableKind, name: str) -> Scale | None:
        read, _ = self._scale_calls(kind)
        raw = self._read_or_none(
            f"read scale of {kind} {namespace}/{name}",
            lambda: read(name, namespace, _request_timeout=self._timeout),
        )
        return wire.scale(raw, kind) if raw is not None else None

    def set_replicas(
        self, namespace: str, kind: ScalableKind, name: str, replicas: int, *, dry_run: bool
    ) -> ScaleResult:
        """`kubectl scale --replicas=N`: a merge patch of the scale subresource, like kubectl."""
        if replicas < 0:
            raise PermanentError(f"replicas must be >= 0, not {replicas}")
        _, patch = self._scale_calls(kind)
        before = self._require(self.scale(namespace, kind, name), kind, namespace, name)
        with _call(f"scale {kind} {namespace}/{name}"):
            after = wire.scale(
                self._json(
                    patch(
                        name,
                        namespace,
                        {"spec": {"replicas": replicas}},
                        _content_type=MERGE_PATCH,
                        _request_timeout=self._timeout,
                        dry_run=_dry_run(dry_run),
                    )
                ),
                kind,
            )
        return ScaleResult(
            kind=kind,
            namespace=namespace,
            name=name,
            previous=before.replicas,
            requested=replicas,
            replicas=after.replicas,
            dry_run=dry_run,
        )

    # env -------------------------------------------------------------------------------------

    def set_env(
        self,
        namespace: str,
        deployment: str,
        variable: str,
        value: str | None,
        *,
        container: str | None = None,
        dry_run: bool,
    ) -> EnvChange:
        """`kubectl set env deploy/X VAR=value` (or `VAR-` when value is None).

        A strategic-merge patch: the API server merges `containers` and `env` by name, so other
        variables and containers are untouched. Like kubectl, every container is changed unless
        one is named. The previous values come back so a caller can revert exactly.
        """
        before = self._require(
            self.deployment(namespace, deployment), "deployment", namespace, deployment
        )
        targets = [c for c in before.containers if container is None or c.name == container]
        if not targets:
            raise PermanentError(
                f'deployment "{deployment}" has no container "{container}"', status=404
            )
        previous: dict[str, EnvVar | None] = {c.name: c.env_var(variable) for c in targets}
        patch_containers = []
        for target in targets:
            if value is None:
                entry: dict[str, Any] = {"name": variable, "$patch": "delete"}
            else:
                entry = {"name": variable, "value": value}
                had = previous[target.name]
                if had is not None and had.value_from is not None:
                    entry["valueFrom"] = None  # value and valueFrom together would be invalid
            patch_containers.append({"name": target.name, "env": [entry]})
        body = {"spec": {"template": {"spec": {"containers": patch_containers}}}}
        with _call(f"set env on deployment {namespace}/{deployment}"):
            after = wire.deployment(
                self._json(
                    self._apps.patch_namespaced_deployment(
                        deployment,
                        namespace,
                        body,
                        field_manager="kubectl-set",
                        _request_timeout=self._timeout,
                        dry_run=_dry_run(dry_run),
                    )
                )
            )
        return EnvChange(
            namespace=namespace,
            deployment=deployment,
            variable=variable,
            value=value,
            previous=previous,
            containers=tuple(previous),
            generation=after.generation,
            dry_run=dry_run,
        )

    def workload_of(self, pod: Pod) -> OwnerRef | None:
        """The Deployment or StatefulSet that owns a pod, through its ownerReferences (a
        ReplicaSet's own controller is its Deployment). None for a bare pod, or a ReplicaSet
        that nothing owns (then the ReplicaSet itself is returned)."""
        owner = pod.owner
        if owner is None or owner.kind != "ReplicaSet":
            return owner
        raw = self._read_or_none(
            f"read replicaset {pod.namespace}/{owner.name}",
            lambda: self._apps.read_namespaced_replica_set(
                owner.name, pod.namespace, _request_timeout=self._timeout
            ),
        )
        if raw is None:
            return owner
        refs = self._json(raw).get("metadata", {}).get("ownerReferences") or []
        ref = next((r for r in refs if r.get("controller")), None)
        if ref is None:
            return owner
        return OwnerRef(
            kind=str(ref.get("kind", "")),
            name=str(ref.get("name", "")),
            uid=str(ref.get("uid", "")),
            controller=True,
        )

    # stateful --------------------------------------------------------------------------------

    def statefulset(self, namespace: str, name: str) -> StatefulSet | None:
        raw = self._read_or_none(
            f"read statefulset {namespace}/{name}",
            lambda: self._apps.read_namespaced_stateful_set(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.statefulset(raw) if raw is not None else None

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
        with _call(f"list pvcs in {namespace}"):
            raw = self._core.list_namespaced_persistent_volume_claim(
                namespace, label_selector=selector or None, _request_timeout=self._timeout
            )
            return tuple(wire.pvc(i) for i in self._items(raw))

    def pod_disruption_budget(self, namespace: str, name: str) -> PodDisruptionBudget | None:
        raw = self._read_or_none(
            f"read pdb {namespace}/{name}",
            lambda: self._policy.read_namespaced_pod_disruption_budget(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.pod_disruption_budget(raw) if raw is not None else None

    def pod_disruption_budgets(self, namespace: str) -> tuple[PodDisruptionBudget, ...]:
        with _call(f"list pdbs in {namespace}"):
            raw = self._policy.list_namespaced_pod_disruption_budget(
                namespace, _request_timeout=self._timeout
            )
            return tuple(wire.pod_disruption_budget(i) for i in self._items(raw))

    # autoscaling -----------------------------------------------------------------------------

    def hpa_rescales(self, namespace: str, name: str) -> tuple[Rescale, ...]:
        """The HPA's SuccessfulRescale decisions, oldest first (aggregated events keep count)."""
        selector = (
            "involvedObject.kind=HorizontalPodAutoscaler,"
            f"involvedObject.name={name},reason=SuccessfulRescale"
        )
        return rescales(self._events(namespace, selector))

    def _raw_hpa(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read_or_none(
            f"read hpa {namespace}/{name}",
            lambda: self._autoscaling.read_namespaced_horizontal_pod_autoscaler(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    def hpa(self, namespace: str, name: str) -> HorizontalPodAutoscaler | None:
        """`kubectl describe hpa`: spec, status, behavior, conditions and rescale history."""
        raw = self._raw_hpa(namespace, name)
        if raw is None:
            return None
        return wire.hpa(raw, self.hpa_rescales(namespace, name))

    def set_hpa_scale_up_window(
        self, namespace: str, name: str, seconds: int, *, dry_run: bool
    ) -> HpaWindowChange:
        """Set behavior.scaleUp.stabilizationWindowSeconds (runbook B's mitigation).

        Why a JSON merge patch and not the runbook's json-patch `replace`: `replace` answers 422
        when spec.behavior (or scaleUp) is unset, and `add` fails the same way when the parent
        objects are missing, so json-patch needs a read-then-choose dance that races with other
        writers. RFC 7386 merge patch creates the missing parents and merges maps key by key,
        so scaleUp.policies, selectPolicy and scaleDown are left exactly as they were.
        """
        if not 0 <= seconds <= 3600:
            raise PermanentError(f"stabilizationWindowSeconds must be 0..3600, not {seconds}")
        before_raw = self._require(self._raw_hpa(namespace, name), "hpa", namespace, name)
        before = wire.hpa(before_raw)
        previous = (
            before.behavior.scale_up.stabilization_window_seconds
            if before.behavior is not None and before.behavior.scale_up is not None
            else None
        )
        body = {"spec": {"behavior": {"scaleUp": {"stabilizationWindowSeconds": seconds}}}}
        with _call(f"patch hpa {namespace}/{name}"):
            after = wire.hpa(
                self._json(
                    self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                        name,
                        namespace,
                        body,
                        _content_type=MERGE_PATCH,
                        field_manager="kubectl-patch",
                        _request_timeout=self._timeout,
                        dry_run=_dry_run(dry_run),
                    )
                )
            )
        return HpaWindowChange(
            namespace=namespace,
            hpa=name,
            previous=previous,
            requested=seconds,
            result=(
                after.behavior.scale_up.stabilization_window_seconds
                if after.behavior is not None and after.behavior.scale_up is not None
                else None
            ),
            behavior_existed=before.behavior is not None,
            dry_run=dry_run,
        )

    # networking ------------------------------------------------------------------------------

    def endpoints(self, namespace: str, name: str) -> Endpoints | None:
        raw = self._read_or_none(
            f"read endpoints {namespace}/{name}",
            lambda: self._core.read_namespaced_endpoints(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.endpoints(raw) if raw is not None else None

    def endpoint_slices(self, namespace: str, service: str) -> tuple[EndpointSlice, ...]:
        with _call(f"list endpointslices of {namespace}/{service}"):
            raw = self._discovery.list_namespaced_endpoint_slice(
                namespace,
                label_selector=f"kubernetes.io/service-name={service}",
                _request_timeout=self._timeout,
            )
            return tuple(wire.endpoint_slice(i) for i in self._items(raw))

    def service(self, namespace: str, name: str) -> Service | None:
        raw = self._read_or_none(
            f"read service {namespace}/{name}",
            lambda: self._core.read_namespaced_service(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.service(raw) if raw is not None else None

    def services(self, namespace: str) -> tuple[Service, ...]:
        with _call(f"list services in {namespace}"):
            raw = self._core.list_namespaced_service(namespace, _request_timeout=self._timeout)
            return tuple(wire.service(i) for i in self._items(raw))

    def network_policies(self, namespace: str) -> tuple[NetworkPolicy, ...]:
        with _call(f"list networkpolicies in {namespace}"):
            raw = self._networking.list_namespaced_network_policy(
                namespace, _request_timeout=self._timeout
            )
            return tuple(wire.network_policy(i) for i in self._items(raw))

    def ingresses(self, namespace: str) -> tuple[Ingress, ...]:
        with _call(f"list ingresses in {namespace}"):
            raw = self._networking.list_namespaced_ingress(
                namespace, _request_timeout=self._timeout
            )
            return tuple(wire.ingress(i) for i in self._items(raw))


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data or "")


def _close_websocket(resp: Any) -> None:
    """WSClient.close() skips the socket when the server closed first; shut it down as well."""
    try:
        resp.close()
    finally:
        sock = getattr(resp, "sock", None)
        if sock is not None:
            sock.shutdown()


def _exit_code(resp: Any) -> int | None:
    """The channel-3 Status: Success -> 0, NonZeroExitCode -> its code (what `returncode` reads).

    Other failures (command not found, container gone) carry no exit code; kubectl reports
    those as exit 1 with the message, so do the same rather than crash on a missing cause.
    """
    raw = _text(resp.read_channel(3))
    if not raw.strip():
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    return 1
