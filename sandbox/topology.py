"""The seeded AlphaSwarm cluster: the runbook's namespaces, workloads, services, ingresses,
network policies, autoscaler and stateful stores, settled and healthy, with a recent history of
events and logs.

Workloads and Services are rows of data (`DEPLOYMENTS`, `STATEFULSETS`, `SERVICES`, together a
`Layout`); pods are built from their templates with the same helpers the controllers use, so the
first controller tick finds nothing to change. A real-cluster condition (`sandbox.conditions`)
seeds a changed Layout, e.g. without the postgres StatefulSet. Incidents are injected later
through `cluster.behaviour`, not by editing this module.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox import execs
from sandbox.auth0 import JWKS_URL
from sandbox.cluster import SandboxCluster
from sandbox.controllers import Controllers
from sandbox.events import record_event
from sandbox.redis_cli import SANDBOX_REDIS_PASSWORD
from sandbox.resources import (
    DEPLOYMENT,
    HPA,
    INGRESS,
    NAMESPACE,
    NETWORK_POLICY,
    NODE,
    PDB,
    POD,
    PVC,
    REPLICASET,
    SERVICE,
    STATEFULSET,
)
from sandbox.scheduler import node_ip
from sandbox.shapes import (
    container_id,
    image_id,
    name_suffix,
    owner_ref,
    pending_pod,
    rfc3339,
    set_condition,
    template_hash,
)
from sandbox.statefulset import claim, revision
from sandbox.store import Obj
from sandbox.workload import program_of, start_log

APP_NS, ADMIN_NS, INGRESS_NS = "alphaswarm", "alphaswarm-admin", "ingress-nginx"
NODES = (
    ("pool-1-node-a", "10.0.1.11", "10.244.1.0/24"),
    ("pool-1-node-b", "10.0.1.12", "10.244.2.0/24"),
)
# The Postgres role and database the flows' data check logs in with (REMEDIATE_POSTGRES__*).
SANDBOX_POSTGRES_USER = "alphaswarm"
SANDBOX_POSTGRES_DB = "alphaswarm"
AGE = 3 * 86400  # the workloads were rolled out three days ago


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    image: str
    replicas: int
    port: int
    labels: Mapping[str, str]
    container: str = "app"
    env: tuple[tuple[str, str], ...] = ()
    probe_path: str | None = "/healthz"
    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "250m", "memory": "256Mi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"memory": "512Mi"})
    args: tuple[str, ...] = ()
    mount: tuple[str, str, str] | None = None  # (claim template, mount path, size)
    # (volume name, mount path) of an emptyDir: per-pod scratch space that survives a container
    # restart but not the pod (a new pod starts with it empty)
    scratch: tuple[str, str] | None = None


DEPLOYMENTS: tuple[Workload, ...] = (
    Workload(
        APP_NS,
        "alphaswarm-core",
        "ghcr.io/alphaswarm/core:2.14.3",
        3,
        8000,
        {"app": "alphaswarm-core", "app.kubernetes.io/part-of": "alphaswarm"},
        env=(
            ("ALPHASWARM_AUTH_ENFORCE", "enforce"),
            ("ALPHASWARM_JWKS_URL", JWKS_URL),
            ("DATABASE_URL", "postgresql://alphaswarm@postgres:5432/alphaswarm"),
            ("CELERY_BROKER_URL", "redis://redis-master:6379/0"),
            ("LOG_LEVEL", "info"),
        ),
        requests={"cpu": "250m", "memory": "512Mi"},
        limits={"cpu": "1", "memory": "1Gi"},
        scratch=("feature-cache", "/var/cache/alphaswarm"),
    ),
    Workload(
        APP_NS,
        "alphaswarm-worker",
        "ghcr.io/alphaswarm/core:2.14.3",
        2,
        9540,
        {"app": "alphaswarm-worker", "app.kubernetes.io/part-of": "alphaswarm"},
        env=(
            ("CELERY_BROKER_URL", "redis://redis-master:6379/0"),
            ("CELERY_QUEUES", "backtests,default"),
            ("DATABASE_URL", "postgresql://alphaswarm@postgres:5432/alphaswarm"),
        ),
        probe_path=None,
        requests={"cpu": "500m", "memory": "1Gi"},
        limits={"cpu": "2", "memory": "2Gi"},
        args=("celery", "-A", "alphaswarm.tasks.celery_app", "worker", "-Q", "backtests,default"),
    ),
    Workload(
        APP_NS,
        "alphaswarm-client",
        "ghcr.io/alphaswarm/client:3.8.1",
        2,
        3000,
        {"app": "alphaswarm-client", "app.kubernetes.io/part-of": "alphaswarm"},
        env=(("ALPHASWARM_API_URL", "http://alphaswarm-core:8000"),),
        probe_path="/api/health",
        requests={"cpu": "100m", "memory": "128Mi"},
        limits={"memory": "256Mi"},
    ),
    Workload(
        ADMIN_NS,
        "alphaswarm-cp",
        "ghcr.io/alphaswarm/control-plane:1.6.0",
        1,
        8080,
        {"app": "alphaswarm-cp", "app.kubernetes.io/part-of": "alphaswarm"},
        env=(
            ("DATABASE_URL", "postgresql://alphaswarm@postgres.alphaswarm:5432/alphaswarm"),
            ("ALPHASWARM_CP_AUDIT_LOG_PATH", ""),
        ),
        requests={"cpu": "100m", "memory": "256Mi"},
        scratch=("run", "/var/run/alphaswarm-cp"),
    ),
    Workload(
        INGRESS_NS,
        "ingress-nginx-controller",
        "registry.k8s.io/ingress-nginx/controller:v1.11.2",
        1,
        80,
        {
            "app.kubernetes.io/name": "ingress-nginx",
            "app.kubernetes.io/instance": "ingress-nginx",
            "app.kubernetes.io/component": "controller",
        },
        container="controller",
        probe_path="/healthz",
        requests={"cpu": "100m", "memory": "90Mi"},
        limits={},
        args=(
            "/nginx-ingress-controller",
            "--ingress-class=nginx",
            "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
        ),
    ),
)

STATEFULSETS: tuple[Workload, ...] = (
    Workload(
        APP_NS,
        "postgres",
        "postgres:16.4",
        1,
        5432,
        {"app": "postgres"},
        container="postgres",
        env=(
            ("POSTGRES_USER", SANDBOX_POSTGRES_USER),
            ("POSTGRES_DB", SANDBOX_POSTGRES_DB),
            ("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ),
        probe_path=None,
        requests={"cpu": "250m", "memory": "512Mi"},
        limits={"memory": "1Gi"},
        mount=("data", "/var/lib/postgresql/data", "20Gi"),
    ),
    Workload(
        APP_NS,
        "redis-master",
        "redis/redis-stack-server:7.2.0-v11",
        1,
        6379,
        {"app": "redis"},
        container="redis",
        # The redis-stack image passes REDIS_ARGS to redis-server: a password, as in production.
        env=(("REDIS_ARGS", f"--requirepass {SANDBOX_REDIS_PASSWORD}"),),
        probe_path=None,
        requests={"cpu": "100m", "memory": "128Mi"},
        limits={"memory": "512Mi"},
        mount=("redis-data", "/data", "8Gi"),
    ),
)


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    selector: Mapping[str, str]
    port: tuple[int, int | str, str]  # (port, targetPort, port name)
    type: str
    cluster_ip: str = ""
    external_name: str = ""  # the DNS name an ExternalName Service answers with


SERVICES: tuple[Service, ...] = (
    Service(
        "alphaswarm-core",
        APP_NS,
        {"app": "alphaswarm-core"},
        (8000, "http", "http"),
        "ClusterIP",
        "10.96.40.10",
    ),
    Service(
        "alphaswarm-client",
        APP_NS,
        {"app": "alphaswarm-client"},
        (80, "http", "http"),
        "ClusterIP",
        "10.96.40.11",
    ),
    Service(
        "postgres",
        APP_NS,
        {"app": "postgres"},
        (5432, 5432, "tcp-postgresql"),
        "ClusterIP",
        "10.96.40.12",
    ),
    Service(
        "redis-master",
        APP_NS,
        {"app": "redis"},
        (6379, 6379, "tcp-redis"),
        "ClusterIP",
        "10.96.40.13",
    ),
    Service(
        "alphaswarm-cp",
        ADMIN_NS,
        {"app": "alphaswarm-cp"},
        (80, "http", "http"),
        "ClusterIP",
        "10.96.41.10",
    ),
    Service(
        "ingress-nginx-controller",
        INGRESS_NS,
        {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
        (80, "http", "http"),
        "LoadBalancer",
        "10.96.42.10",
    ),
)


@dataclass(frozen=True)
class Layout:
    """What `seed` builds: the workloads and Services, and where Postgres lives."""

    deployments: tuple[Workload, ...] = DEPLOYMENTS
    statefulsets: tuple[Workload, ...] = STATEFULSETS
    services: tuple[Service, ...] = SERVICES
    # The CIDR of a Postgres outside the cluster (a managed database in the VPC), which the core
    # egress policy allows on 5432 instead of the postgres pods; None while it is a pod here.
    external_postgres_cidr: str | None = None

    def with_env(self, name: str, value: str) -> Layout:
        """Every workload that sets env `name` sets it to `value` instead."""

        def swap(w: Workload) -> Workload:
            env = tuple((k, value if k == name else v) for k, v in w.env)
            return replace(w, env=env)

        return replace(
            self,
            deployments=tuple(swap(w) for w in self.deployments),
            statefulsets=tuple(swap(w) for w in self.statefulsets),
        )


def _container(w: Workload) -> Obj:
    c: Obj = {
        "name": w.container,
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http" if w.probe_path else "tcp", "containerPort": w.port, "protocol": "TCP"}
        ],
        "env": [{"name": k, "value": v} for k, v in w.env],
        "resources": {
            **({"requests": dict(w.requests)} if w.requests else {}),
            **({"limits": dict(w.limits)} if w.limits else {}),
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if w.args:
        c["args"] = list(w.args)
    if w.probe_path:
        c["readinessProbe"] = {
            "httpGet": {"path": w.probe_path, "port": w.port, "scheme": "HTTP"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
        c["livenessProbe"] = {
            "httpGet": {"path": w.probe_path, "port": w.port, "scheme": "HTTP"},
            "initialDelaySeconds": 15,
            "periodSeconds": 20,
            "timeoutSeconds": 2,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
    mounts = [m[:2] for m in (w.mount, w.scratch) if m]
    if mounts:
        c["volumeMounts"] = [{"name": name, "mountPath": path} for name, path in mounts]
    return c


def _template(w: Workload) -> Obj:
    return {
        "metadata": {"labels": dict(w.labels)},
        "spec": {
            "containers": [_container(w)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            **({"volumes": [{"name": w.scratch[0], "emptyDir": {}}]} if w.scratch else {}),
        },
    }


class _Seeder:
    def __init__(self, cluster: SandboxCluster, now: float) -> None:
        self.cluster, self.store, self.now = cluster, cluster.store, now
        self.rng = random.Random(42)
        self._node_turn = 0
        self._ips: dict[str, int] = {}

    # -- pods --------------------------------------------------------------------------------
    def _node(self) -> Mapping[str, Any]:
        name = NODES[self._node_turn % len(NODES)][0]
        self._node_turn += 1
        node = self.store.get(NODE, "", name)
        assert node is not None
        return node

    def _pod_ip(self, node: Mapping[str, Any]) -> str:
        prefix = node["spec"]["podCIDR"].rsplit(".", 1)[0]
        self._ips[prefix] = self._ips.get(prefix, 9) + 1
        return f"{prefix}.{self._ips[prefix]}"

    def running_pod(
        self,
        template: Mapping[str, Any],
        owner: Mapping[str, Any],
        name: str,
        *,
        extra_labels: Mapping[str, str],
        created: float,
        volumes: list[Obj] | None = None,
        hostname: tuple[str, str] | None = None,
    ) -> Obj:
        """A pod that started at `created` and has been Ready since, with its events and logs."""
        node = self._node()
        ns = owner["metadata"]["namespace"]
        pod = pending_pod(
            template,
            name=name,
            namespace=ns,
            owner=owner,
            node=node["metadata"]["name"],
            host_ip=node_ip(node),
            extra_labels=extra_labels,
            created=rfc3339(created),
            volumes=volumes or [],
            hostname=hostname,
        )
        started, ready = rfc3339(created + 2), rfc3339(created + 12)
        status = pod["status"]
        ip = self._pod_ip(node)
        status.update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
        for cs, c in zip(status["containerStatuses"], pod["spec"]["containers"], strict=True):
            cs.update(
                imageID=image_id(c["image"]),
                containerID=container_id(self.rng),
                ready=True,
                started=True,
                state={"running": {"startedAt": started}},
            )
        set_condition(status["conditions"], "PodReadyToStartContainers", "True", "", "", started)
        for type_ in ("ContainersReady", "Ready"):
            set_condition(status["conditions"], type_, "True", "", "", ready)
        pod = self.store.create(POD, pod)
        self._pod_history(pod, created)
        return pod

    def _pod_history(self, pod: Mapping[str, Any], created: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node = spec["nodeName"]
        record_event(
            self.store,
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            now=created,
            component="default-scheduler",
        )
        labels = meta.get("labels") or {}
        program = program_of(labels)
        for c in spec["containers"]:
            path = f"spec.containers{{{c['name']}}}"
            for reason, message in (
                (
                    "Pulled",
                    f'Successfully pulled image "{c["image"]}" in 2.481s '
                    "(2.481s including waiting)",
                ),
                ("Created", f"Created container {c['name']}"),
                ("Started", f"Started container {c['name']}"),
            ):
                record_event(
                    self.store,
                    pod,
                    reason,
                    message,
                    now=created + 2,
                    component="kubelet",
                    host=node,
                    field_path=path,
                )
            self.cluster.runtime.append_log(
                meta["uid"], c["name"], *start_log(labels, meta["name"], created + 2, self.now)
            )
            self.cluster.runtime.set_usage(
                meta["uid"], c["name"], cpu=program.cpu, memory=program.memory
            )

    # -- objects -----------------------------------------------------------------------------
    def create(self, kind: Any, obj: Obj, created: float | None = None) -> Obj:
        obj.setdefault("metadata", {})["creationTimestamp"] = rfc3339(created or self.now - AGE)
        return self.store.create(kind, obj)

    def namespaces_and_nodes(self) -> None:
        for ns in ("default", "kube-system", APP_NS, ADMIN_NS, INGRESS_NS):
            self.create(
                NAMESPACE,
                {
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
                self.now - 30 * 86400,
            )
        stamp = rfc3339(self.now - 30 * 86400)
        for name, ip, cidr in NODES:
            self.create(
                NODE,
                {
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "node.kubernetes.io/instance-type": "e2-standard-8",
                            "topology.kubernetes.io/zone": "europe-west1-b",
                        },
                    },
                    "spec": {
                        "podCIDR": cidr,
                        "podCIDRs": [cidr],
                        "providerID": f"gce://alphaswarm/europe-west1-b/{name}",
                    },
                    "status": {
                        "capacity": {
                            "cpu": "8",
                            "memory": "32884196Ki",
                            "pods": "110",
                            "ephemeral-storage": "98831908Ki",
                        },
                        "allocatable": {
                            "cpu": "7910m",
                            "memory": "29094372Ki",
                            "pods": "110",
                            "ephemeral-storage": "47060071478",
                        },
                        "conditions": [
                            {
                                "type": "MemoryPressure",
                                "status": "False",
                                "reason": "KubeletHasSufficientMemory",
                                "message": "kubelet has sufficient memory available",
                                "lastHeartbeatTime": stamp,
                                "lastTransitionTime": stamp,
                            },
                            {
                                "type": "DiskPressure",
                                "status": "False",
                                "reason": "KubeletHasNoDiskPressure",
                                "message": "kubelet has no disk pressure",
                                "lastHeartbeatTime": stamp,
                                "lastTransitionTime": stamp,
                            },
                            {
                                "type": "PIDPressure",
                                "status": "False",
                                "reason": "KubeletHasSufficientPID",
                                "message": "kubelet has sufficient PID available",
                                "lastHeartbeatTime": stamp,
                                "lastTransitionTime": stamp,
                            },
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": stamp,
                                "lastTransitionTime": stamp,
                            },
                        ],
                        "addresses": [
                            {"type": "InternalIP", "address": ip},
                            {"type": "Hostname", "address": name},
                        ],
                        "nodeInfo": {
                            "machineID": template_hash({"node": name}),
                            "systemUUID": template_hash({"uuid": name}),
                            "bootID": template_hash({"boot": name}),
                            "kernelVersion": "6.1.100+",
                            "osImage": "Container-Optimized OS from Google",
                            "containerRuntimeVersion": "containerd://1.7.22",
                            "kubeletVersion": "v1.32.4",
                            "kubeProxyVersion": "v1.32.4",
                            "operatingSystem": "linux",
                            "architecture": "amd64",
                        },
                    },
                },
                self.now - 30 * 86400,
            )

    def deployment(self, w: Workload) -> None:
        created = self.now - AGE
        template = _template(w)
        deployment = self.create(
            DEPLOYMENT,
            {
                "metadata": {
                    "name": w.name,
                    "namespace": w.namespace,
                    "labels": dict(w.labels),
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                },
                "spec": {
                    "replicas": w.replicas,
                    "selector": {"matchLabels": dict(w.labels)},
                    "template": template,
                    "progressDeadlineSeconds": 600,
                    "revisionHistoryLimit": 10,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    },
                },
            },
        )
        hash_ = template_hash(template)
        rs_template = copy.deepcopy(template)
        rs_template["metadata"]["labels"]["pod-template-hash"] = hash_
        rs = self.create(
            REPLICASET,
            {
                "metadata": {
                    "name": f"{w.name}-{hash_}",
                    "namespace": w.namespace,
                    "labels": dict(rs_template["metadata"]["labels"]),
                    "annotations": {
                        "deployment.kubernetes.io/revision": "1",
                        "deployment.kubernetes.io/desired-replicas": str(w.replicas),
                        "deployment.kubernetes.io/max-replicas": str(w.replicas + 1),
                    },
                    "ownerReferences": [owner_ref(deployment)],
                },
                "spec": {
                    "replicas": w.replicas,
                    "selector": {"matchLabels": {**w.labels, "pod-template-hash": hash_}},
                    "template": rs_template,
                },
                "status": {"replicas": w.replicas},
            },
        )
        record_event(
            self.store,
            deployment,
            "ScalingReplicaSet",
            f"Scaled up replica set {rs['metadata']['name']} from 0 to {w.replicas}",
            now=created,
            component="deployment-controller",
        )
        for _ in range(w.replicas):
            pod = self.running_pod(
                rs_template,
                rs,
                f"{rs['metadata']['name']}-{name_suffix(self.rng)}",
                extra_labels={},
                created=created,
            )
            record_event(
                self.store,
                rs,
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                now=created,
                component="replicaset-controller",
            )

    def statefulset(self, w: Workload) -> None:
        assert w.mount is not None
        created = self.now - AGE
        claim_template, _, size = w.mount
        sts = self.create(
            STATEFULSET,
            {
                "metadata": {"name": w.name, "namespace": w.namespace, "labels": dict(w.labels)},
                "spec": {
                    "replicas": w.replicas,
                    "serviceName": w.name,
                    "podManagementPolicy": "OrderedReady",
                    "selector": {"matchLabels": dict(w.labels)},
                    "template": _template(w),
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "persistentVolumeClaimRetentionPolicy": {
                        "whenDeleted": "Retain",
                        "whenScaled": "Retain",
                    },
                    "volumeClaimTemplates": [
                        {
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim_template},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": size}},
                            },
                        }
                    ],
                },
            },
        )
        rev = revision(sts)
        for ordinal in range(w.replicas):
            pvc = claim(sts, sts["spec"]["volumeClaimTemplates"][0], ordinal, created)
            self.store.create(PVC, pvc)
            name = f"{w.name}-{ordinal}"
            self.running_pod(
                sts["spec"]["template"],
                sts,
                name,
                created=created,
                extra_labels={
                    "apps.kubernetes.io/pod-index": str(ordinal),
                    "controller-revision-hash": rev,
                    "statefulset.kubernetes.io/pod-name": name,
                },
                volumes=[
                    {
                        "name": claim_template,
                        "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]},
                    }
                ],
                hostname=(name, w.name),
            )
            record_event(
                self.store,
                sts,
                "SuccessfulCreate",
                f"create Pod {name} in StatefulSet {w.name} successful",
                now=created,
                component="statefulset-controller",
            )

    def services(self, rows: tuple[Service, ...]) -> None:
        for row in rows:
            port, target, port_name = row.port
            ports = [{"name": port_name, "port": port, "targetPort": target, "protocol": "TCP"}]
            spec: Obj
            if row.type == "ExternalName":  # a DNS alias: no cluster IP, selector or endpoints
                spec = {"type": "ExternalName", "externalName": row.external_name}
                spec.update(ports=ports, sessionAffinity="None")
            else:
                spec = {
                    "type": row.type,
                    "clusterIP": row.cluster_ip,
                    "clusterIPs": [row.cluster_ip],
                    "selector": dict(row.selector),
                    "ports": ports,
                    "sessionAffinity": "None",
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                }
            status: Obj = {"loadBalancer": {}}
            if row.type == "LoadBalancer":
                ports.append(
                    {
                        "name": "https",
                        "port": 443,
                        "targetPort": "https",
                        "protocol": "TCP",
                        "nodePort": 31443,
                    }
                )
                ports[0]["nodePort"] = 31080
                spec["externalTrafficPolicy"] = "Local"
                status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}}
            self.create(
                SERVICE,
                {
                    "metadata": {
                        "name": row.name,
                        "namespace": row.namespace,
                        "labels": {"app": row.name},
                    },
                    "spec": spec,
                    "status": status,
                },
            )

    def ingresses(self) -> None:
        lb = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}
        self.create(
            INGRESS,
            {
                "metadata": {
                    "name": "alphaswarm",
                    "namespace": APP_NS,
                    "annotations": {
                        "nginx.ingress.kubernetes.io/proxy-body-size": "10m",
                        "cert-manager.io/cluster-issuer": "letsencrypt-prod",
                    },
                },
                "spec": {
                    "ingressClassName": "nginx",
                    "tls": [
                        {"hosts": ["app.alphaswarm.enterprise.com"], "secretName": "alphaswarm-tls"}
                    ],
                    "rules": [
                        {
                            "host": "app.alphaswarm.enterprise.com",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/api",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": "alphaswarm-core",
                                                "port": {"number": 8000},
                                            }
                                        },
                                    },
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": "alphaswarm-client",
                                                "port": {"number": 80},
                                            }
                                        },
                                    },
                                ]
                            },
                        }
                    ],
                },
                "status": lb,
            },
        )
        self.create(
            INGRESS,
            {
                "metadata": {
                    "name": "alphaswarm-cp",
                    "namespace": ADMIN_NS,
                    "annotations": {
                        # The operator UI is firewalled here: runbook Scenario D's precondition.
                        "nginx.ingress.kubernetes.io/whitelist-source-range": (
                            "10.0.0.0/8,192.168.100.0/24"
                        ),
                        "cert-manager.io/cluster-issuer": "letsencrypt-prod",
                    },
                },
                "spec": {
                    "ingressClassName": "nginx",
                    "tls": [
                        {
                            "hosts": ["manage.alphaswarm.enterprise.com"],
                            "secretName": "alphaswarm-cp-tls",
                        }
                    ],
                    "rules": [
                        {
                            "host": "manage.alphaswarm.enterprise.com",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": "alphaswarm-cp",
                                                "port": {"number": 80},
                                            }
                                        },
                                    },
                                ]
                            },
                        }
                    ],
                },
                "status": lb,
            },
        )

    def network_policies(self, external_postgres_cidr: str | None) -> None:
        from_ingress = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NS}}
        }

        def allow(ns: str, name: str, app: str, sources: list[Obj], port: int) -> Obj:
            return {
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "podSelector": {"matchLabels": {"app": app}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": port}]}],
                },
            }

        def app_pods(*apps: str) -> list[Obj]:
            return [{"podSelector": {"matchLabels": {"app": a}}} for a in apps]

        policies = [
            {
                "metadata": {"name": "default-deny-ingress", "namespace": ns},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            }
            for ns in (APP_NS, ADMIN_NS)
        ]
        policies += [
            allow(APP_NS, "allow-ingress-to-client", "alphaswarm-client", [from_ingress], 3000),
            allow(
                APP_NS,
                "allow-to-core",
                "alphaswarm-core",
                [from_ingress, *app_pods("alphaswarm-client")],
                8000,
            ),
        ]
        if external_postgres_cidr is None:  # a managed Postgres has no pods to let traffic in to
            policies.append(
                allow(
                    APP_NS,
                    "allow-to-postgres",
                    "postgres",
                    [
                        *app_pods("alphaswarm-core", "alphaswarm-worker"),
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": ADMIN_NS}
                            }
                        },
                    ],
                    5432,
                )
            )
        postgres_peers = (
            app_pods("postgres")
            if external_postgres_cidr is None
            else [{"ipBlock": {"cidr": external_postgres_cidr}}]
        )
        policies += [
            allow(
                APP_NS,
                "allow-to-redis",
                "redis",
                app_pods("alphaswarm-core", "alphaswarm-worker"),
                6379,
            ),
            allow(ADMIN_NS, "allow-ingress-to-cp", "alphaswarm-cp", [from_ingress], 8080),
            {
                "metadata": {"name": "alphaswarm-core-egress", "namespace": APP_NS},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "alphaswarm-core"}},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [
                                {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}
                            ],
                            "ports": [{"protocol": "TCP", "port": 443}],
                        },
                        {
                            "to": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {
                                            "kubernetes.io/metadata.name": "kube-system"
                                        }
                                    },
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                                }
                            ],
                            "ports": [
                                {"protocol": "UDP", "port": 53},
                                {"protocol": "TCP", "port": 53},
                            ],
                        },
                        {"to": postgres_peers, "ports": [{"protocol": "TCP", "port": 5432}]},
                        {"to": app_pods("redis"), "ports": [{"protocol": "TCP", "port": 6379}]},
                    ],
                },
            },
        ]
        for policy in policies:
            self.create(NETWORK_POLICY, policy)

    def autoscaling(self) -> None:
        hpa = self.create(
            HPA,
            {
                "metadata": {"name": "alphaswarm-core", "namespace": APP_NS},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "alphaswarm-core",
                    },
                    "minReplicas": 3,
                    "maxReplicas": 10,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 70},
                            },
                        }
                    ],
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": 0,
                            "selectPolicy": "Max",
                            "policies": [
                                {"type": "Percent", "value": 100, "periodSeconds": 15},
                                {"type": "Pods", "value": 4, "periodSeconds": 15},
                            ],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": 60,
                            "selectPolicy": "Max",
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                        },
                    },
                },
                "status": {
                    "currentReplicas": 3,
                    "desiredReplicas": 3,
                    "lastScaleTime": rfc3339(self.now - 5400),
                    "conditions": [],
                },
            },
        )
        record_event(
            self.store,
            hpa,
            "SuccessfulRescale",
            "New size: 3; reason: All metrics below target",
            now=self.now - 5400,
            component="horizontal-pod-autoscaler",
        )
        self.create(
            PDB,
            {
                "metadata": {"name": "alphaswarm-core", "namespace": APP_NS},
                "spec": {
                    "minAvailable": 2,
                    "selector": {"matchLabels": {"app": "alphaswarm-core"}},
                    "unhealthyPodEvictionPolicy": "IfHealthyBudget",
                },
                "status": {
                    "observedGeneration": 1,
                    "currentHealthy": 3,
                    "desiredHealthy": 2,
                    "disruptionsAllowed": 1,
                    "expectedPods": 3,
                    "conditions": [
                        {
                            "type": "DisruptionAllowed",
                            "status": "True",
                            "reason": "SufficientPods",
                            "message": "",
                            "observedGeneration": 1,
                            "lastTransitionTime": rfc3339(self.now - AGE),
                        }
                    ],
                },
            },
        )


def seed(cluster: SandboxCluster, layout: Layout | None = None) -> None:
    """Fill the cluster with the AlphaSwarm topology, settled by one controller tick."""
    layout = layout or Layout()
    seeder = _Seeder(cluster, time.time())
    seeder.namespaces_and_nodes()
    for w in layout.deployments:
        seeder.deployment(w)
    for w in layout.statefulsets:
        seeder.statefulset(w)
    seeder.services(layout.services)
    seeder.ingresses()
    seeder.network_policies(layout.external_postgres_cidr)
    seeder.autoscaling()
    execs.install(cluster)
    Controllers(cluster).step()
