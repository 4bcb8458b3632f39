"""autoscaling/v2: the HPA, its rescale decisions (events), and its scale-up window."""

from __future__ import annotations

from typing import Any

from tasks.adapters import wire
from tasks.adapters.cluster import (
    HorizontalPodAutoscaler,
    HpaWindowChange,
    Rescale,
)
from tasks.adapters.errors import PermanentError
from tasks.adapters.events import rescales
from tasks.adapters.kubernetes.client import (
    MERGE_PATCH,
    calling,
    dry_run_query,
)
from tasks.adapters.kubernetes.core import CoreCalls


class AutoscalingCalls(CoreCalls):
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
        with calling(f"patch hpa {namespace}/{name}"):
            after = wire.hpa(
                self._json(
                    self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                        name,
                        namespace,
                        body,
                        _content_type=MERGE_PATCH,
                        field_manager="kubectl-patch",
                        _request_timeout=self._timeout,
                        dry_run=dry_run_query(dry_run),
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
