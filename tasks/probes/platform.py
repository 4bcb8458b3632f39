"""Probes for the runbook's platform branch (D, E, F): each returns one typed snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tasks.adapters.cluster import PersistentVolumeClaim, Pod, PodDisruptionBudget
from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import curl_jwks
from tasks.connection import cluster, http_endpoints
from tasks.diagnoses.crashes import is_crash_looping
from tasks.diagnoses.findings import JWKS_SYMPTOM
from tasks.models.snapshots import (
    ExecCurl,
    IngressSnapshot,
    JwksSnapshot,
    ReadinessFailure,
    ServiceEndpoints,
    StatefulSnapshot,
)
from tasks.retries import probe_task

CONTROLLER_LOG_TAIL = 200


def jwks_keys(text: str) -> int:
    """How many keys a JWKS document holds (0 when it is not one)."""
    try:
        keys = json.loads(text).get("keys")
    except (ValueError, AttributeError):
        return 0
    return len(keys) if isinstance(keys, list) else 0


def _selects(labels: dict[str, str], pod: Pod) -> bool:
    return bool(labels) and all(pod.labels.get(k) == v for k, v in labels.items())


SYMPTOM_LOG_TAIL = 100


@probe_task("probe-jwks")
def probe_jwks(
    namespace: str,
    deployment: str,
    jwks_url: str,
    admin_namespace: str,
    operator_ingress: str,
    auth_variable: str,
    *,
    from_here: bool = True,
) -> JwksSnapshot:
    """Runbook D: curl the JWKS URL from this process and from inside a core pod, read the
    symptom (`jwks_unreachable` in the core log), and what tells the causes apart: the Egress
    NetworkPolicies selecting core pods (outbound 443), and whether the operator UI's Ingress
    is firewalled (the precondition of the permissive flip). A curl that cannot be exec'd (no
    curl in the image, no pod to exec in) is recorded as such, not as a JWKS failure."""
    c = cluster()
    here = http_endpoints().jwks(jwks_url) if from_here else None
    found = c.deployment(namespace, deployment)
    from_pod: ExecCurl | None = None
    pod_error = ""
    try:
        curl = c.exec_in_deployment(namespace, deployment, curl_jwks(jwks_url))
        from_pod = ExecCurl.from_exec(curl, jwks_keys(curl.stdout))
    except PermanentError as exc:
        pod_error = str(exc)
    symptom: tuple[str, ...] = ()
    log_read = False
    if found is not None:
        try:
            logs = c.deployment_logs(namespace, deployment, tail=SYMPTOM_LOG_TAIL)
        except PermanentError:
            logs = None
        if logs is not None and logs.text is not None:
            log_read = True
            symptom = tuple(line for line in logs.text.splitlines() if JWKS_SYMPTOM in line)
    template_labels = found.selector.match_labels if found is not None else {}
    policies = tuple(
        p
        for p in c.network_policies(namespace)
        if "Egress" in p.policy_types
        and all(template_labels.get(k) == v for k, v in p.pod_selector.match_labels.items())
    )
    ingress = next((i for i in c.ingresses(admin_namespace) if i.name == operator_ingress), None)
    enforce = None
    if found is not None and found.containers:
        var = found.containers[0].env_var(auth_variable)
        enforce = var.value if var is not None else None
    return JwksSnapshot(
        observed_at=datetime.now(UTC),
        namespace=namespace,
        deployment_name=deployment,
        from_here=here,
        from_pod=from_pod,
        egress_policies=policies,
        operator_ingress=ingress,
        auth_enforce=enforce,
        auth_variable=auth_variable,
        pod_error=pod_error,
        symptom_lines=symptom[-5:],
        log_read=log_read,
    )


def _readiness_failures(namespace: str, pods: tuple[Pod, ...]) -> tuple[ReadinessFailure, ...]:
    """Unhealthy events of these pods whose message is a readiness probe's."""
    names = {p.name for p in pods}
    events = cluster().events(namespace, "reason=Unhealthy")
    return tuple(
        ReadinessFailure(pod=e.involved.name or "", message=e.message or "", count=e.count)
        for e in events
        if e.involved.name in names and "readiness" in (e.message or "").lower()
    )


def _owning_deployments(pods: tuple[Pod, ...]) -> tuple[str, ...]:
    """The Deployments these pods belong to, through their ownerReferences."""
    c = cluster()
    found: dict[str, None] = {}
    for pod in pods:
        owner = c.workload_of(pod)
        if owner is not None and owner.kind == "Deployment":
            found[owner.name] = None
    return tuple(found)


@probe_task("probe-ingress")
def probe_ingress(
    controller_namespace: str, controller: str, services: list[tuple[str, str]]
) -> IngressSnapshot:
    """Runbook E: `-n ingress-nginx get pods`, the controller's log tail, the Endpoints of each
    backend Service and, for the empty ones, the Deployments behind them (the Service's
    selector, then the pods' owners), which readiness probes fail and why, and their PDBs."""
    c = cluster()
    found = c.deployment(controller_namespace, controller)
    selector = found.selector.render() if found is not None else ""
    pods = c.pods(controller_namespace, selector or None) if found is not None else ()
    logs = (
        c.deployment_logs(controller_namespace, controller, tail=CONTROLLER_LOG_TAIL)
        if pods
        else None
    )
    backends = []
    pdbs: dict[str, PodDisruptionBudget] = {}
    for namespace, name in services:
        endpoints = c.endpoints(namespace, name)
        svc = c.service(namespace, name)
        failures: tuple[ReadinessFailure, ...] = ()
        owners: tuple[str, ...] = ()
        crashing: tuple[str, ...] = ()
        if svc is not None and (endpoints is None or not endpoints.ready):
            backing = tuple(p for p in c.pods(namespace) if _selects(svc.selector, p))
            crashing = tuple(p.name for p in backing if is_crash_looping(p))
            failures = _readiness_failures(namespace, backing)
            owners = _owning_deployments(backing)
            for pdb in c.pod_disruption_budgets(namespace):
                pdbs[f"{namespace}/{pdb.name}"] = pdb
        backends.append(
            ServiceEndpoints(
                namespace=namespace,
                service=name,
                exists=svc is not None,
                selector=dict(svc.selector) if svc is not None else {},
                endpoints=endpoints,
                deployments=owners,
                crashing=crashing,
                readiness_failures=failures,
            )
        )
    return IngressSnapshot(
        observed_at=datetime.now(UTC),
        controller_namespace=controller_namespace,
        controller_name=controller,
        controller=found,
        controller_pods=pods,
        controller_log_tail=(logs.text or "") if logs is not None else "",
        services=tuple(backends),
        pdbs=tuple(pdbs.values()),
    )


@probe_task("probe-stateful")
def probe_stateful(namespace: str, postgres_selector: str, redis_pod: str) -> StatefulSnapshot:
    """Runbook F: the Postgres pod and the claims it mounts, redis-master-0, its StatefulSet
    and claims. No Postgres pod is a fact to report, not a Postgres outage."""
    c = cluster()
    pg_pods = c.pods(namespace, postgres_selector)
    pvcs = {p.name: p for p in c.pvcs(namespace)}
    redis = c.pod(namespace, redis_pod)
    owner = redis.owner.name if redis is not None and redis.owner is not None else None
    sts_name = owner or redis_pod.rsplit("-", 1)[0]
    sts = c.statefulset(namespace, sts_name)
    return StatefulSnapshot(
        observed_at=datetime.now(UTC),
        namespace=namespace,
        postgres_selector=postgres_selector,
        postgres_pods=pg_pods,
        postgres_pvcs=_claims_of(pg_pods, pvcs),
        redis_pod_name=redis_pod,
        redis_pod=redis,
        redis_statefulset=sts,
        redis_pvcs=_claims_of((redis,) if redis is not None else (), pvcs)
        or tuple(p for n, p in pvcs.items() if n.endswith(f"-{redis_pod}")),
    )


def _claims_of(
    pods: tuple[Pod, ...], pvcs: dict[str, PersistentVolumeClaim]
) -> tuple[PersistentVolumeClaim, ...]:
    """The claims the pods' volumes mount, as they are in the cluster (a missing one is not
    listed: `verify_stateful_ready` then has nothing to prove survived)."""
    names = dict.fromkeys(name for pod in pods for name in pod.claims)
    return tuple(pvcs[n] for n in names if n in pvcs)
