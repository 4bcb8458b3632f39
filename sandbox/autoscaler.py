"""The HorizontalPodAutoscaler controller: steady by default, thrashing on demand.

Steady, it reports the target's replicas and keeps them within min/max. Told to flap
(`Behaviour.hpa_flap`), it rescales the target between two sizes every tick and records the
alternating SuccessfulRescale events, aggregated as the event recorder does; widening
spec.behavior.scaleUp.stabilizationWindowSeconds to 300 (the runbook's mitigation) damps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.behaviour import FLAP_DAMPING_WINDOW
from sandbox.cluster import SandboxCluster
from sandbox.events import record_event
from sandbox.resources import DEPLOYMENT, HPA
from sandbox.shapes import rfc3339, set_condition
from sandbox.store import Obj

UP_REASON = "cpu resource utilization (percentage of request) above target"
DOWN_REASON = "All metrics below target"
_METRIC = "cpu resource utilization (percentage of request)"


def scale_up_window(hpa: Mapping[str, Any]) -> int:
    behavior = hpa["spec"].get("behavior") or {}
    return int((behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds") or 0)


def _cpu_target(hpa: Mapping[str, Any]) -> int:
    for metric in hpa["spec"].get("metrics") or []:
        resource = metric.get("resource") or {}
        if resource.get("name") == "cpu":
            return int(resource.get("target", {}).get("averageUtilization", 80))
    return 80


class AutoscalerController:
    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster

    def step(self, now: float) -> None:
        hpas, _ = self.cluster.store.list(HPA)
        for hpa in hpas:
            self._sync(hpa, now)

    def _sync(self, hpa: Mapping[str, Any], now: float) -> None:
        store = self.cluster.store
        meta, spec = hpa["metadata"], hpa["spec"]
        ns = meta["namespace"]
        ref = spec["scaleTargetRef"]
        if ref.get("kind") != "Deployment":
            return
        target = store.get(DEPLOYMENT, ns, ref["name"])
        if target is None:
            return
        current = target["spec"].get("replicas", 1)
        low, high = spec.get("minReplicas", 1), spec["maxReplicas"]
        behaviour = self.cluster.behaviour.hpa(ns, meta["name"])
        utilization = behaviour.cpu_utilization
        desired, reason = min(max(current, low), high), ""
        able = ("True", "ReadyForNewScale", "recommended size matches current size")
        if desired > current:
            reason = "Current number of replicas below Spec.MinReplicas"
        elif desired < current:
            reason = "Current number of replicas above Spec.MaxReplicas"
        if behaviour.flap is not None:
            if scale_up_window(hpa) >= FLAP_DAMPING_WINDOW:
                able = (
                    "True",
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest "
                    "recent recommendation",
                )
            else:
                flap_low, flap_high = behaviour.flap
                if current >= flap_high:
                    desired, reason = flap_low, DOWN_REASON
                    utilization = max(_cpu_target(hpa) // 3, 1)
                else:
                    desired, reason = flap_high, UP_REASON
                    utilization = _cpu_target(hpa) + 25
        if desired != current:
            self._rescale(hpa, target, desired, reason, now)
            able = (
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
        observed = (target.get("status") or {}).get("replicas", current)
        self._report(
            hpa, observed, desired, utilization, able, rescaled=desired != current, now=now
        )

    def _rescale(
        self,
        hpa: Mapping[str, Any],
        target: Mapping[str, Any],
        desired: int,
        reason: str,
        now: float,
    ) -> None:
        meta = target["metadata"]

        def scale(d: Obj) -> None:
            d["spec"]["replicas"] = desired

        self.cluster.store.update(DEPLOYMENT, meta["namespace"], meta["name"], scale)
        record_event(
            self.cluster.store,
            hpa,
            "SuccessfulRescale",
            f"New size: {desired}; reason: {reason}",
            now=now,
            component="horizontal-pod-autoscaler",
        )

    def _report(
        self,
        hpa: Mapping[str, Any],
        current: int,
        desired: int,
        utilization: int,
        able: tuple[str, str, str],
        *,
        rescaled: bool,
        now: float,
    ) -> None:
        meta, spec = hpa["metadata"], hpa["spec"]
        stamp = rfc3339(now)
        low, high = spec.get("minReplicas", 1), spec["maxReplicas"]
        if desired <= low and utilization < _cpu_target(hpa):
            limited = (
                "True",
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        elif desired >= high:
            limited = (
                "True",
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        else:
            limited = (
                "False",
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )

        def write(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            conditions = status.setdefault("conditions", [])
            set_condition(conditions, "AbleToScale", *able, stamp)
            set_condition(
                conditions,
                "ScalingActive",
                "True",
                "ValidMetricFound",
                f"the HPA was able to successfully calculate a replica count from {_METRIC}",
                stamp,
            )
            set_condition(conditions, "ScalingLimited", *limited, stamp)
            status.update(
                observedGeneration=meta.get("generation", 1),
                currentReplicas=current,
                desiredReplicas=desired,
                currentMetrics=[
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "current": {
                                "averageUtilization": utilization,
                                "averageValue": f"{utilization * 250 // 100}m",
                            },
                        },
                    }
                ],
            )
            if rescaled:
                status["lastScaleTime"] = stamp

        self.cluster.store.update(HPA, meta["namespace"], meta["name"], write)
