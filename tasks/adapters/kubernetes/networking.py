"""networking.k8s.io, discovery.k8s.io and policy/v1: NetworkPolicies, Ingresses, EndpointSlices
and PodDisruptionBudgets.
"""

from __future__ import annotations

from tasks.adapters import wire
from tasks.adapters.cluster import (
    EndpointSlice,
    Ingress,
    NetworkPolicy,
    PodDisruptionBudget,
)
from tasks.adapters.kubernetes.client import (
    ApiCalls,
    calling,
)


class NetworkingCalls(ApiCalls):
    def endpoint_slices(self, namespace: str, service: str) -> tuple[EndpointSlice, ...]:
        with calling(f"list endpointslices of {namespace}/{service}"):
            raw = self._discovery.list_namespaced_endpoint_slice(
                namespace,
                label_selector=f"kubernetes.io/service-name={service}",
                _request_timeout=self._timeout,
            )
            return tuple(wire.endpoint_slice(i) for i in self._items(raw))

    def network_policies(self, namespace: str) -> tuple[NetworkPolicy, ...]:
        with calling(f"list networkpolicies in {namespace}"):
            raw = self._networking.list_namespaced_network_policy(
                namespace, _request_timeout=self._timeout
            )
            return tuple(wire.network_policy(i) for i in self._items(raw))

    def ingresses(self, namespace: str) -> tuple[Ingress, ...]:
        with calling(f"list ingresses in {namespace}"):
            raw = self._networking.list_namespaced_ingress(
                namespace, _request_timeout=self._timeout
            )
            return tuple(wire.ingress(i) for i in self._items(raw))

    def pod_disruption_budget(self, namespace: str, name: str) -> PodDisruptionBudget | None:
        raw = self._read_or_none(
            f"read pdb {namespace}/{name}",
            lambda: self._policy.read_namespaced_pod_disruption_budget(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return wire.pod_disruption_budget(raw) if raw is not None else None

    def pod_disruption_budgets(self, namespace: str) -> tuple[PodDisruptionBudget, ...]:
        with calling(f"list pdbs in {namespace}"):
            raw = self._policy.list_namespaced_pod_disruption_budget(
                namespace, _request_timeout=self._timeout
            )
            return tuple(wire.pod_disruption_budget(i) for i in self._items(raw))
