"""Whether a pod can reach the Auth0 JWKS endpoint, and what `curl` says when it cannot.

Scenario D has to tell three causes apart from the same symptom (`jwks_unreachable`): Auth0 itself
down (503 from everywhere), outbound 443 blocked by a NetworkPolicy (works from outside the
cluster, `curl` inside the pod cannot connect) and DNS failure inside the cluster (`Could not
resolve host`). The answer is computed from the stored NetworkPolicies and the behaviour knobs,
so restoring the policy really restores the path, as it would on a real cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sandbox.auth0 import JWKS_DOCUMENT, JWKS_HOST
from sandbox.resources import NETWORK_POLICY
from sandbox.runtime import ExecResult

_CURL_CODES = {503: "503", 502: "502", 500: "500", 429: "429", 404: "404", 401: "401"}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _rule_allows_internet(rule: Mapping[str, Any], port: int) -> bool:
    ports = rule.get("ports") or []
    port_ok = not ports or any(
        p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports
    )
    peers = rule.get("to")
    to_ok = not peers or any("ipBlock" in peer for peer in peers)
    return port_ok and to_ok


def egress_allowed(cluster: Any, pod: Mapping[str, Any], port: int) -> bool:
    """NetworkPolicy semantics: a pod no Egress policy selects may go anywhere; a selected pod
    only where some rule of some selecting policy allows (rules add up, nothing denies)."""
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    policies, _ = cluster.store.list(NETWORK_POLICY, meta["namespace"])
    selecting = [
        p
        for p in policies
        if "Egress" in (p["spec"].get("policyTypes") or [])
        and _selects(p["spec"].get("podSelector") or {}, labels)
    ]
    if not selecting:
        return True
    return any(
        _rule_allows_internet(rule, port)
        for p in selecting
        for rule in p["spec"].get("egress") or []
    )


def curl_jwks_from_pod(cluster: Any, pod: Mapping[str, Any]) -> ExecResult:
    """`curl -fsS <JWKS URL>` run inside `pod`."""
    if not cluster.behaviour.external_dns:
        return ExecResult(stderr=f"curl: (6) Could not resolve host: {JWKS_HOST}\n", exit_code=6)
    if not egress_allowed(cluster, pod, 443):
        return ExecResult(
            stderr=f"curl: (28) Failed to connect to {JWKS_HOST} port 443 after 10002 ms: "
            "Timeout was reached\n",
            exit_code=28,
        )
    status = cluster.behaviour.jwks_status
    if status == 200:
        return ExecResult(stdout=json.dumps(JWKS_DOCUMENT))
    code = _CURL_CODES.get(status, str(status))
    return ExecResult(stderr=f"curl: (22) The requested URL returned error: {code}\n", exit_code=22)
