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
    JSON_PATCH,
    MERGE_PATCH,
    calling,
    dry_run_query,
)
from tasks.adapters.kubernetes.core import CoreCalls

WINDOW_PATH = "/spec/behavior/scaleUp/stabilizationWindowSeconds"

# What the API server fills into `behavior` once it is set at all (autoscaling/v2 defaulting,
# SetDefaults_HorizontalPodAutoscalerBehavior), besides scaleUp's window (0). A real server
# also defaults the scale-up window to 0 whenever `behavior` exists, so a window that was unset
# means `behavior` was absent: if what is left is nothing, or only these defaults, the exact
# state before is "no behavior".
_DEFAULT_BEHAVIOR: dict[str, Any] = {
    "scaleUp": {
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    },
    "scaleDown": {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    },
}


def _canonical(rules: Any) -> Any:
    if not isinstance(rules, dict) or "policies" not in rules:
        return rules
    return {**rules, "policies": sorted(rules["policies"] or [], key=lambda p: sorted(p.items()))}


def _only_defaults(behavior: dict[str, Any]) -> bool:
    """`behavior` (scale-up window taken out) holds nothing, or only what the server defaults."""
    kept = {k: _canonical(v) for k, v in behavior.items() if v}
    return all(
        k in _DEFAULT_BEHAVIOR and v == _canonical(_DEFAULT_BEHAVIOR[k]) for k, v in kept.items()
    )


def remove_window_patch(raw_behavior: dict[str, Any], window: int) -> list[dict[str, Any]]:
    """The JSON patch that removes the scale-up window: `test` that it is still `window` (a
    concurrent writer makes it fail, 422, rather than be overwritten), then `remove` of the
    window, of `scaleUp` if nothing else is in it, or of `behavior` if nothing but the server's
    defaults remain. Other fields a human set stay as they are."""
    up = dict(raw_behavior.get("scaleUp") or {})
    up.pop("stabilizationWindowSeconds", None)
    rest = {**raw_behavior, "scaleUp": up}
    if _only_defaults(rest):
        path = "/spec/behavior"
    elif not up:
        path = "/spec/behavior/scaleUp"
    else:
        path = WINDOW_PATH
    return [{"op": "test", "path": WINDOW_PATH, "value": window}, {"op": "remove", "path": path}]


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
        self, namespace: str, name: str, seconds: int | None, *, dry_run: bool
    ) -> HpaWindowChange:
        """Set behavior.scaleUp.stabilizationWindowSeconds (runbook B's mitigation).

        Why a JSON merge patch and not the runbook's json-patch `replace`: `replace` answers 422
        when spec.behavior (or scaleUp) is unset, and `add` fails the same way when the parent
        objects are missing, so json-patch needs a read-then-choose dance that races with other
        writers. RFC 7386 merge patch creates the missing parents and merges maps key by key,
        so scaleUp.policies, selectPolicy and scaleDown are left exactly as they were.

        `seconds` None removes the window (the put-back of one that was unset): a JSON patch,
        see `remove_window_patch`. Already absent: nothing is sent.
        """
        if seconds is None:
            return self._remove_hpa_window(namespace, name, dry_run=dry_run)
        if not 0 <= seconds <= 3600:
            raise PermanentError(f"stabilizationWindowSeconds must be 0..3600, not {seconds}")
        before = wire.hpa(self._require(self._raw_hpa(namespace, name), "hpa", namespace, name))
        body = {"spec": {"behavior": {"scaleUp": {"stabilizationWindowSeconds": seconds}}}}
        after = self._patch_hpa(namespace, name, body, MERGE_PATCH, dry_run=dry_run)
        return _window_change(namespace, name, before, after, seconds, dry_run=dry_run)

    def _remove_hpa_window(self, namespace: str, name: str, *, dry_run: bool) -> HpaWindowChange:
        raw = self._require(self._raw_hpa(namespace, name), "hpa", namespace, name)
        before = after = wire.hpa(raw)
        previous = _window(before)
        if previous is not None:
            behavior = dict((raw.get("spec") or {}).get("behavior") or {})
            patch = remove_window_patch(behavior, previous)
            after = self._patch_hpa(namespace, name, patch, JSON_PATCH, dry_run=dry_run)
        return _window_change(namespace, name, before, after, None, dry_run=dry_run)

    def _patch_hpa(
        self, namespace: str, name: str, body: Any, content_type: str, *, dry_run: bool
    ) -> HorizontalPodAutoscaler:
        with calling(f"patch hpa {namespace}/{name}"):
            return wire.hpa(
                self._json(
                    self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                        name,
                        namespace,
                        body,
                        _content_type=content_type,
                        field_manager="kubectl-patch",
                        _request_timeout=self._timeout,
                        dry_run=dry_run_query(dry_run),
                    )
                )
            )


def _window(hpa: HorizontalPodAutoscaler) -> int | None:
    """behavior.scaleUp.stabilizationWindowSeconds, None when unset."""
    up = hpa.behavior.scale_up if hpa.behavior is not None else None
    return up.stabilization_window_seconds if up is not None else None


def _window_change(
    namespace: str,
    name: str,
    before: HorizontalPodAutoscaler,
    after: HorizontalPodAutoscaler,
    requested: int | None,
    *,
    dry_run: bool,
) -> HpaWindowChange:
    return HpaWindowChange(
        namespace=namespace,
        hpa=name,
        previous=_window(before),
        requested=requested,
        result=_window(after),
        behavior_existed=before.behavior is not None,
        dry_run=dry_run,
    )
