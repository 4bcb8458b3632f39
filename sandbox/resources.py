"""The resource kinds the sandbox serves: one table that routing, discovery and storage share.

Each kind is served at its REST path exactly as a real API server does, so the official client and
kubectl find it through the same discovery documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # Fields a fieldSelector may name besides metadata.name / metadata.namespace.
    selectable_fields: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = field(
        default=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Storage key: the group and plural, independent of the version served."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

POD = Kind(
    "",
    "v1",
    "pods",
    "Pod",
    short_names=("po",),
    subresources=("log", "exec", "status"),
    selectable_fields=_POD_FIELDS,
    categories=("all",),
)
EVENT = Kind("", "v1", "events", "Event", short_names=("ev",), selectable_fields=_EVENT_FIELDS)
SERVICE = Kind("", "v1", "services", "Service", short_names=("svc",), categories=("all",))
ENDPOINTS = Kind("", "v1", "endpoints", "Endpoints", short_names=("ep",))
PVC = Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",))
NAMESPACE = Kind("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",))
NODE = Kind("", "v1", "nodes", "Node", namespaced=False, short_names=("no",))
DEPLOYMENT = Kind(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    short_names=("deploy",),
    subresources=("scale", "status"),
    categories=("all",),
)
REPLICASET = Kind(
    "apps",
    "v1",
    "replicasets",
    "ReplicaSet",
    short_names=("rs",),
    subresources=("scale", "status"),
    categories=("all",),
)
STATEFULSET = Kind(
    "apps",
    "v1",
    "statefulsets",
    "StatefulSet",
    short_names=("sts",),
    subresources=("scale", "status"),
    categories=("all",),
)
HPA = Kind(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "HorizontalPodAutoscaler",
    short_names=("hpa",),
    subresources=("status",),
    categories=("all",),
)
NETWORK_POLICY = Kind(
    "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)
)
INGRESS = Kind("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",))
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
PDB = Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",))
# What installing the project creates (infra/) and what Prefect's Kubernetes worker submits.
SERVICE_ACCOUNT = Kind("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",))
SECRET = Kind("", "v1", "secrets", "Secret")
CONFIG_MAP = Kind("", "v1", "configmaps", "ConfigMap", short_names=("cm",))
_RBAC = "rbac.authorization.k8s.io"
ROLE = Kind(_RBAC, "v1", "roles", "Role")
ROLE_BINDING = Kind(_RBAC, "v1", "rolebindings", "RoleBinding")
CLUSTER_ROLE = Kind(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDING = Kind(
    _RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
JOB = Kind("batch", "v1", "jobs", "Job", subresources=("status",), categories=("all",))

KINDS: tuple[Kind, ...] = (
    POD,
    EVENT,
    SERVICE,
    ENDPOINTS,
    PVC,
    NAMESPACE,
    NODE,
    DEPLOYMENT,
    REPLICASET,
    STATEFULSET,
    HPA,
    NETWORK_POLICY,
    INGRESS,
    ENDPOINT_SLICE,
    PDB,
    SERVICE_ACCOUNT,
    SECRET,
    CONFIG_MAP,
    ROLE,
    ROLE_BINDING,
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    JOB,
)

# group -> version -> plural -> Kind; autoscaling/v1 exists only so discovery can name Scale.
BY_PATH: dict[str, dict[str, dict[str, Kind]]] = {}
for _k in KINDS:
    BY_PATH.setdefault(_k.group, {}).setdefault(_k.version, {})[_k.plural] = _k


def lookup(group: str, version: str, plural: str) -> Kind | None:
    return BY_PATH.get(group, {}).get(version, {}).get(plural)
