"""Alerts as the public rule sets send them (kube-state-metrics via kubernetes-mixin, the
exporters' own rules), each beside the incident it reports: triage picks the runbook's branch on
what the probes see, whatever label layout the rule produced (an exporter's own namespace and
pod, kube-state-metrics' pod on workload alerts, ingress-nginx's `exported_namespace`)."""

from __future__ import annotations

import pytest

from flows.triage import triage
from sandbox import injections
from sandbox.server import SandboxServer
from sandbox.symptoms import showing
from tasks.models.alerts import parse_alertmanager
from tests.flows.sandbox_settings import point_flows_at, rule_payload
from tests.flows.sandbox_state import settle


@pytest.mark.parametrize(
    ("incident", "rule", "branch"),
    [
        ("crashloop-single", "kube-pod-crashlooping-core", "A"),
        ("crashloop-single", "kube-container-waiting-core", "A"),
        ("cp-crashloop", "kube-pod-crashlooping-cp", "A"),
        ("crashloop-several", "kube-pod-crashlooping-core-two", "B"),
        ("hpa-thrash", "kube-hpa-maxed-out", "B"),
        ("queue-backlog", "celery-high-queue-length", "C"),
        ("jwks-503", "blackbox-probe-failed-jwks", "D"),
        ("ingress-503", "nginx-high-http-5xx-error-rate", "E"),
        ("ingress-503", "kube-deployment-replicas-mismatch-client", "E"),
        ("ingress-503:ingress-controller-down", "kube-pod-crashlooping-ingress-controller", "E"),
        ("postgres-down", "postgresql-down", "F"),
        ("redis-down", "redis-down", "F"),
        ("redis-down", "kube-statefulset-replicas-mismatch-redis", "F"),
    ],
)
def test_a_real_rule_leads_to_the_incidents_branch(
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    incident: str,
    rule: str,
    branch: str,
) -> None:
    point_flows_at(sandbox, monkeypatch)
    injections.inject(sandbox.cluster, incident)
    settle(sandbox, lambda: showing(sandbox.cluster, incident), timeout=20)
    alerts = parse_alertmanager(rule_payload(sandbox, rule))
    result = triage(alerts=alerts, dry_run=True)
    assert result.scenario is not None and result.scenario.value == branch, result.reason
    assert not result.escalate, result.reason
    assert sandbox.cluster.journal.mutations() == []
