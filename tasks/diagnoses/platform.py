"""Pure decisions for the runbook's platform branch (D, E, F): snapshot in, Diagnosis out.

A platform error explains workload symptoms, so these are asked first by triage. The rules that
guard a hard-rule bypass (permissive auth only behind a firewalled operator UI) and a data risk
(no Postgres pod restart in production) live here, where a table test can pin them down.
"""

from __future__ import annotations

from tasks.adapters.cluster import Ingress, NetworkPolicy, Pod, PodDisruptionBudget
from tasks.diagnoses.crashes import is_crash_looping, serving
from tasks.diagnoses.findings import (
    CURL_DNS_FAILURE,
    CURL_HTTP_ERROR,
    FindingKind,
    curl_could_not_run,
    jwks_finding,
)
from tasks.models.diagnosis import Action, Diagnosis, Scenario
from tasks.models.snapshots import (
    ExecCurl,
    IngressSnapshot,
    JwksSnapshot,
    ServiceEndpoints,
    StatefulSnapshot,
)
from tasks.settings import ENVIRONMENT_UNSET, Environment

PERMISSIVE = "permissive"
# Annotations that restrict who may reach an Ingress (ingress-nginx, and its older spelling).
FIREWALL_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "nginx.ingress.kubernetes.io/allowlist-source-range",
)
OPEN_RANGES = frozenset({"0.0.0.0/0", "::/0"})
MANAGED_POSTGRES = (
    "the runbook says K8s overlays must migrate to a managed Postgres (Aurora / Cloud SQL / "
    "Azure Database for PostgreSQL) before going to prod; a pod restart is not the fix there"
)


# ---------------------------------------------------------------------------------------------
# D: JWKS


def _port_allows(port: str, wanted: int) -> bool:
    protocol, _, number = port.partition("/")
    if protocol != "TCP":
        return False
    if number in ("*", ""):
        return True
    low, _, high = number.partition("-")
    if not low.isdigit():
        return False  # a named port cannot be an Internet service
    return int(low) <= wanted <= int(high or low)


def egress_allows_https(policies: tuple[NetworkPolicy, ...]) -> bool:
    """NetworkPolicy semantics for the selected pods: with no Egress policy, everything goes;
    otherwise some rule must allow TCP 443 to an ipBlock (or to anywhere)."""
    egress = [p for p in policies if "Egress" in p.policy_types]
    if not egress:
        return True
    return any(
        (not rule.ports or any(_port_allows(port, 443) for port in rule.ports))
        and (not rule.peers or any("ipBlock:" in peer for peer in rule.peers))
        for policy in egress
        for rule in policy.egress
    )


def operator_ui_firewall(ingress: Ingress | None) -> str | None:
    """The source ranges guarding the operator UI's Ingress, or None when it is open."""
    if ingress is None:
        return None
    for key in FIREWALL_ANNOTATIONS:
        ranges = [r.strip() for r in ingress.annotations.get(key, "").split(",") if r.strip()]
        if ranges and not OPEN_RANGES.intersection(ranges):
            return ",".join(ranges)
    return None


DNS_WORDS = ("could not resolve", "name resolution", "no such host", "nxdomain")


def is_dns_failure(curl: ExecCurl | None, symptom: tuple[str, ...] = ()) -> bool:
    """curl's exit 6, or the app's own jwks_unreachable line saying the name did not resolve."""
    if curl is not None and curl.exit_code == CURL_DNS_FAILURE:
        return True
    text = " ".join((curl.stderr if curl is not None else "", *symptom)).lower()
    return any(word in text for word in DNS_WORDS)


def _jwks_evidence(snapshot: JwksSnapshot) -> list[str]:
    evidence = list(jwks_finding(snapshot).evidence)
    evidence.append(
        "egress TCP 443 from core pods: "
        + ("allowed" if egress_allows_https(snapshot.egress_policies) else "BLOCKED")
        + f" ({len(snapshot.egress_policies)} selecting policy(ies))"
    )
    firewall = operator_ui_firewall(snapshot.operator_ingress)
    evidence.append(
        f"operator UI Ingress: {'firewalled to ' + firewall if firewall else 'NOT firewalled'}"
    )
    evidence.append(f"{snapshot.auth_variable}={snapshot.auth_enforce or '(unset)'}")
    return evidence


def _jwks_cause(snapshot: JwksSnapshot) -> tuple[str, str] | None:
    """(what is wrong, the real fix) for the runbook's three causes, or None for another one.

    DNS and blocked egress are told apart from an Auth0 outage because their real fix is ours
    to make; the runbook's mitigation is the same for all three. The pod's curl is used only
    when it could run; the app's own `jwks_unreachable` lines stand in for it otherwise."""
    here = snapshot.from_here
    pod = None if curl_could_not_run(snapshot.from_pod) else snapshot.from_pod
    pod_fails = (pod is not None and not pod.ok) or bool(snapshot.symptom_lines)
    if pod_fails and is_dns_failure(pod, snapshot.symptom_lines):
        return "DNS resolution fails inside the cluster", "CoreDNS / upstream DNS is fixed"
    if pod_fails and not egress_allows_https(snapshot.egress_policies):
        return (
            "outbound 443 is blocked by a NetworkPolicy",
            "the egress rule is restored (network-policies.yaml)",
        )
    auth0_down = (here is not None and here.failure == "http" and (here.status or 0) >= 500) or (
        pod is not None and pod.exit_code == CURL_HTTP_ERROR
    )
    if auth0_down:
        return "Auth0 is down", "Auth0 recovers (https://status.auth0.com/)"
    return None


def diagnose_jwks(snapshot: JwksSnapshot) -> Diagnosis:
    """Runbook D: tell an Auth0 outage from blocked egress and DNS failure, then apply the
    runbook's one mitigation (permissive auth for read-only routes) only when the operator UI
    is firewalled at the Ingress; the cause and its real fix go in the summary."""
    where = {"namespace": snapshot.namespace, "name": snapshot.deployment_name}
    evidence = tuple(_jwks_evidence(snapshot))
    seen = jwks_finding(snapshot)

    def decide(action: Action, summary: str, **extra: str) -> Diagnosis:
        return Diagnosis(
            scenario=Scenario.JWKS_OUTAGE,
            action=action,
            summary=summary,
            evidence=evidence,
            **where,
            **extra,
        )

    if seen.inconclusive:
        return decide(Action.ESCALATE, f"JWKS could not be probed: {seen.summary}")
    if not seen.fault:
        return decide(Action.NONE, f"JWKS answers: healthy ({seen.summary})")
    found = _jwks_cause(snapshot)
    if found is None:
        return decide(
            Action.ESCALATE, f"JWKS fails for a reason the runbook does not name: {seen.summary}"
        )
    cause, real_fix = found
    if (snapshot.auth_enforce or "").lower() == PERMISSIVE:
        return decide(Action.NONE, f"{cause} and {snapshot.auth_variable} is permissive already")
    if operator_ui_firewall(snapshot.operator_ingress) is None:
        return decide(
            Action.ESCALATE,
            f"{cause}, but the operator UI is not firewalled at the Ingress: the runbook "
            "forbids the permissive flip",
        )
    return decide(
        Action.SET_AUTH_PERMISSIVE,
        f"{cause}: set {snapshot.auth_variable}=permissive for read-only routes until "
        f"{real_fix} (a hard-rule bypass: record it and schedule the revert)",
        variable=snapshot.auth_variable,
        value=PERMISSIVE,
    )


def jwks_answers(snapshot: JwksSnapshot) -> bool:
    """JWKS is seen healthy (inside a core pod, from here, or in the app's own log) and nothing
    sees it failing."""
    return jwks_finding(snapshot).kind is FindingKind.HEALTHY


def diagnose_auth_revert(
    snapshot: JwksSnapshot, restore_value: str | None, bypass_value: str = PERMISSIVE
) -> Diagnosis:
    """The permissive bypass's revert: restore the earlier value once JWKS answers again, and
    never overwrite a value someone set by hand since the bypass."""
    current = snapshot.auth_enforce
    shown = current if current is not None else "(unset)"
    evidence = tuple(_jwks_evidence(snapshot))

    def decide(action: Action, summary: str) -> Diagnosis:
        return Diagnosis(
            scenario=Scenario.JWKS_OUTAGE,
            action=action,
            summary=summary,
            evidence=evidence,
            namespace=snapshot.namespace,
            name=snapshot.deployment_name,
            variable=snapshot.auth_variable,
            value=restore_value,
        )

    if (current or "").lower() != bypass_value.lower():
        if current == restore_value:
            return decide(Action.NONE, f"{snapshot.auth_variable} is {shown} again: nothing to do")
        return decide(
            Action.ESCALATE,
            f"{snapshot.auth_variable} is {shown}, neither the bypass nor the value before it: "
            "someone changed it since, so the revert leaves it alone",
        )
    if not jwks_answers(snapshot):
        return decide(
            Action.ESCALATE,
            f"JWKS still fails: {snapshot.auth_variable} stays {bypass_value} until it answers",
        )
    restored = restore_value if restore_value is not None else "(unset)"
    return decide(
        Action.RESTORE_AUTH_ENFORCE,
        f"JWKS answers again: restore {snapshot.auth_variable} to {restored}",
    )


# ---------------------------------------------------------------------------------------------
# E: ingress


def _ready(pods: tuple[Pod, ...]) -> list[Pod]:
    return [p for p in pods if serving(p)]


def diagnose_ingress(snapshot: IngressSnapshot) -> Diagnosis:
    """Runbook E: the controller down, or a Service with no ready endpoints (and why)."""
    ready = _ready(snapshot.controller_pods)
    evidence = [
        f"ingress-nginx controller: {len(ready)}/{len(snapshot.controller_pods)} pod(s) ready"
    ]
    tail = [line for line in snapshot.controller_log_tail.splitlines() if line.strip()][-3:]
    evidence += [f"controller log: {line}" for line in tail]

    def decide(
        action: Action,
        summary: str,
        target: tuple[str, str] | None = None,  # (namespace, name) of what to act on
        *,
        scenario: Scenario = Scenario.INGRESS_503,
    ) -> Diagnosis:
        namespace, name = target or (None, None)
        return Diagnosis(
            scenario=scenario,
            action=action,
            summary=summary,
            evidence=tuple(evidence),
            namespace=namespace,
            name=name,
        )

    if snapshot.controller is None or not ready:
        controller = (snapshot.controller_namespace, snapshot.controller_name)
        crashing = [p.name for p in snapshot.controller_pods if is_crash_looping(p)]
        if crashing:
            evidence.append(f"crash-looping controller pods: {', '.join(crashing)}")
        if snapshot.controller is None:
            return decide(
                Action.ESCALATE,
                "the ingress-nginx controller Deployment does not exist",
                controller,
            )
        return decide(
            Action.RESTART_DEPLOYMENT,
            "no ingress-nginx controller pod is ready: rolling restart of the controller",
            controller,
        )
    empty = []
    for svc in snapshot.services:
        count = len(svc.endpoints.ready) if svc.endpoints is not None else 0
        waiting = len(svc.endpoints.not_ready) if svc.endpoints is not None else 0
        if not svc.exists:
            evidence.append(f"no Service {svc.namespace}/{svc.service}: not checked")
            continue
        evidence.append(f"endpoints {svc.namespace}/{svc.service}: {count} ready, {waiting} not")
        evidence += [
            f"readiness fails on {f.pod} (x{f.count}): {f.message}" for f in svc.readiness_failures
        ]
        if count == 0:
            empty.append(svc)
    if not empty:
        return decide(Action.NONE, "the controller and every backend have ready endpoints")
    restart: list[tuple[str, str]] = []
    for svc in empty:
        why = _backend_blocker(svc, snapshot)
        if why is not None:
            action, summary = why
            return decide(
                action,
                summary,
                (svc.namespace, svc.service),
                scenario=Scenario.STATEFUL_FAILOVER
                if action is Action.REROUTE
                else Scenario.INGRESS_503,
            )
        restart += [(svc.namespace, d) for d in svc.deployments]
    evidence += [_pdb_fact(svc, snapshot) for svc in empty]
    names = ", ".join(f"deployment/{name}" for _, name in restart)
    found = decide(
        Action.RESTART_DEPLOYMENT,
        f"the pods behind {', '.join(s.service for s in empty)} fail their readiness probe: "
        f"rolling restart of {names}",
        restart[0],
    )
    return found.model_copy(update={"more_targets": tuple(f"{n}/{d}" for n, d in restart[1:])})


def _pdb_fact(svc: ServiceEndpoints, snapshot: IngressSnapshot) -> str:
    """The PDBs guarding the backend. No pod behind it is ready, so a rolling restart cannot
    lower the healthy count below what it is: the PDB is evidence here, never a veto."""
    pdbs = _pdbs_of(svc, snapshot)
    if not pdbs:
        return f"no PodDisruptionBudget selects the pods of {svc.namespace}/{svc.service}"
    return "; ".join(
        f"PDB {p.name}: {p.current_healthy} healthy, {p.desired_healthy} desired (none ready, so "
        "a restart cannot take it lower)"
        for p in pdbs
    )


def _pdbs_of(svc: ServiceEndpoints, snapshot: IngressSnapshot) -> list[PodDisruptionBudget]:
    return [
        p
        for p in snapshot.pdbs
        if p.namespace == svc.namespace
        and p.selector.match_labels
        and all(svc.selector.get(k) == v for k, v in p.selector.match_labels.items())
    ]


def _backend_blocker(svc: ServiceEndpoints, snapshot: IngressSnapshot) -> tuple[Action, str] | None:
    """Why an empty backend must not be restarted: (the action instead, why), or None."""
    where = f"{svc.namespace}/{svc.service}"
    if svc.endpoints is None:
        return Action.ESCALATE, f"Service {where} has no Endpoints object"
    if svc.crashing:
        return Action.ESCALATE, (
            f"the pods behind {where} crash-loop ({', '.join(svc.crashing)}): runbook A or B "
            "(triage decides), not an ingress restart"
        )
    messages = " ".join(f.message.lower() for f in svc.readiness_failures)
    if any(word in messages for word in ("postgres", "redis", "5432", "6379", "database")):
        return Action.REROUTE, "readiness fails on a datastore: runbook F, not a restart"
    if not svc.readiness_failures:
        return Action.ESCALATE, f"{where} has no ready endpoints and no Unhealthy events say why"
    if not svc.deployments:
        return Action.ESCALATE, f"no Deployment owns the pods {where} selects: nothing to restart"
    return None


# ---------------------------------------------------------------------------------------------
# F: stateful


def _down(pods: tuple[Pod, ...]) -> bool:
    """Pods exist and none is ready. No pod at all is not "down": nothing says it should run
    here (a managed Postgres has none)."""
    return bool(pods) and not _ready(pods)


def diagnose_stateful(snapshot: StatefulSnapshot, environment: Environment | None) -> Diagnosis:
    """Runbook F: delete the Postgres pod (data stays in its PVC) or redis-master-0 (its
    StatefulSet brings it back); never the Postgres pod in production, nor where the environment
    is unknown (None: REMEDIATE_ENVIRONMENT unset), which is treated as production."""
    ns = snapshot.namespace
    pg_down = _down(snapshot.postgres_pods)
    redis_pods = (snapshot.redis_pod,) if snapshot.redis_pod is not None else ()
    # A missing redis pod is down when its StatefulSet exists to say it should be there.
    redis_down = _down(redis_pods) or (
        snapshot.redis_pod is None and snapshot.redis_statefulset is not None
    )
    evidence = [
        f"postgres pods ({snapshot.postgres_selector}): "
        + (", ".join(f"{p.name} {p.status} {p.ready}" for p in snapshot.postgres_pods) or "none"),
        "postgres PVCs: "
        + (", ".join(f"{c.name} {c.phase}" for c in snapshot.postgres_pvcs) or "none"),
        f"{snapshot.redis_pod_name}: "
        + (
            f"{snapshot.redis_pod.status} {snapshot.redis_pod.ready}"
            if snapshot.redis_pod is not None
            else "missing"
        ),
    ]
    if snapshot.redis_statefulset is not None:
        sts = snapshot.redis_statefulset
        evidence.append(f"statefulset {sts.name}: {sts.ready_replicas}/{sts.replicas} ready")

    def decide(action: Action, summary: str, **target: str) -> Diagnosis:
        return Diagnosis(
            scenario=Scenario.STATEFUL_FAILOVER,
            action=action,
            summary=summary,
            evidence=tuple(evidence),
            namespace=ns,
            **target,
        )

    redis = {"name": snapshot.redis_pod_name}
    postgres = {"selector": snapshot.postgres_selector}
    if pg_down and redis_down:
        return decide(
            Action.ESCALATE,
            "Postgres and Redis are both down: a node or storage failure, not a pod",
        )
    if redis_down:
        if snapshot.redis_statefulset is None:
            return decide(
                Action.ESCALATE,
                f"{snapshot.redis_pod_name} is down and no StatefulSet would recreate it",
                **redis,
            )
        return decide(
            Action.DELETE_PODS,
            f"Redis is down: delete pod {snapshot.redis_pod_name}; its StatefulSet brings it back",
            **redis,
        )
    if not pg_down:
        if not snapshot.postgres_pods:
            evidence.append(
                f"no pod matches {snapshot.postgres_selector}: Postgres is managed outside the "
                "cluster or runs under other labels (not probed here)"
            )
            return decide(Action.NONE, "Redis is ready; Postgres has no pod here to judge")
        return decide(Action.NONE, "Postgres and Redis are ready")
    if environment is None:
        unset = f"{ENVIRONMENT_UNSET}: treated as production, the Postgres pod is not deleted"
        evidence.append(unset)
        return decide(Action.ESCALATE, f"Postgres is down; {unset}; {MANAGED_POSTGRES}", **postgres)
    if environment is Environment.PRODUCTION:
        return decide(
            Action.ESCALATE,
            f"Postgres is down in production: refusing the pod restart; {MANAGED_POSTGRES}",
            **postgres,
        )
    if not snapshot.postgres_pvcs or any(c.phase != "Bound" for c in snapshot.postgres_pvcs):
        return decide(
            Action.ESCALATE,
            "Postgres's PVC is not Bound: a restart would not find its data",
            **postgres,
        )
    return decide(
        Action.DELETE_PODS,
        f"Postgres is down ({environment}): delete pod -l {snapshot.postgres_selector}; "
        "the data persists in the PVC",
        **postgres,
    )
