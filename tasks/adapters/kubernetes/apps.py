"""apps/v1: Deployments (rollouts, scale, env, `deploy/X` logs and exec), StatefulSets, and the
workload that owns a pod.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException

from tasks.adapters import wire
from tasks.adapters.cluster import (
    RESTARTED_AT_ANNOTATION,
    Deployment,
    DeploymentLogs,
    EnvChange,
    EnvVar,
    ExecResult,
    OwnerRef,
    Pod,
    RestartResult,
    RolloutState,
    RolloutStatus,
    ScalableKind,
    Scale,
    ScaleResult,
    StatefulSet,
)
from tasks.adapters.errors import AdapterError, PermanentError, TransientError
from tasks.adapters.exec_commands import ExecCommand
from tasks.adapters.kubernetes.client import (
    MERGE_PATCH,
    calling,
    classify,
    dry_run_query,
    rfc3339,
    watch_api,
)
from tasks.adapters.kubernetes.core import CoreCalls
from tasks.adapters.pod_order import pick_for_exec, pick_for_logs
from tasks.adapters.rollout import rollout_status


class AppsCalls(CoreCalls):
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

    def exec_in_deployment(
        self,
        namespace: str,
        deployment: str,
        command: ExecCommand,
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

    def deployments(self, namespace: str) -> tuple[Deployment, ...]:
        """`kubectl get deployments -n NS`: every Deployment, LISTed in pages, in the server's
        order."""
        return self._paged(
            f"list deployments in {namespace}",
            partial(self._apps.list_namespaced_deployment, namespace),
            wire.deployment,
        )

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
        with calling(f"rollout restart {namespace}/{name}"):
            after = wire.deployment(
                self._json(
                    self._apps.patch_namespaced_deployment(
                        name,
                        namespace,
                        body,
                        field_manager="kubectl-rollout",
                        _request_timeout=self._timeout,
                        dry_run=dry_run_query(dry_run),
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
            with calling(operation):
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
        watcher = watch_api.Watch()
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
        with calling(f"scale {kind} {namespace}/{name}"):
            after = wire.scale(
                self._json(
                    patch(
                        name,
                        namespace,
                        {"spec": {"replicas": replicas}},
                        _content_type=MERGE_PATCH,
                        _request_timeout=self._timeout,
                        dry_run=dry_run_query(dry_run),
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
        with calling(f"set env on deployment {namespace}/{deployment}"):
            after = wire.deployment(
                self._json(
                    self._apps.patch_namespaced_deployment(
                        deployment,
                        namespace,
                        body,
                        field_manager="kubectl-set",
                        _request_timeout=self._timeout,
                        dry_run=dry_run_query(dry_run),
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
        return wire.owner_ref(ref)

    def statefulset(self, namespace: str, name: str) -> StatefulSet | None:
        raw = self._read_or_none(
            f"read statefulset {namespace}/{name}",
            lambda: self._apps.read_namespaced_stateful_set(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.statefulset(raw) if raw is not None else None
