"""Alerts as public rule sets really send them (tests/fixtures/alerts/rules/, see its README):
every payload parses, names the object the rule is about (not the exporter that reported it),
and falls inside or outside the configured namespaces as an operator would expect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tasks.models.alerts import alert_target, in_scope, parse_alertmanager
from tasks.settings import Workloads

RULES = Path(__file__).resolve().parent.parent / "fixtures" / "alerts" / "rules"
PLACEHOLDER = re.compile(r"\{pod:([^/]+)/([^:]+):(\d+)\}")


def load(name: str) -> dict[str, object]:
    text = PLACEHOLDER.sub(
        lambda m: f"{m[2]}-5d8f7c9b4-x{m[3]}", (RULES / f"{name}.json").read_text()
    )
    body: dict[str, object] = json.loads(text)
    return body


@pytest.mark.parametrize("path", sorted(RULES.glob("*.json")), ids=lambda p: p.stem)
def test_every_rule_payload_parses(path: Path) -> None:
    batch = parse_alertmanager(load(path.stem))
    assert batch.alerts


@pytest.mark.parametrize(
    ("name", "namespace", "pod", "deployment", "statefulset", "hpa"),
    [
        (
            "kube-pod-crashlooping-core",
            "alphaswarm",
            "alphaswarm-core-5d8f7c9b4-x0",
            None,
            None,
            None,
        ),
        (
            "kube-pod-crashlooping-cp",
            "alphaswarm-admin",
            "alphaswarm-cp-5d8f7c9b4-x0",
            None,
            None,
            None,
        ),
        # The workload-level rules carry kube-state-metrics' own pod: never the target.
        (
            "kube-deployment-replicas-mismatch-client",
            "alphaswarm",
            None,
            "alphaswarm-client",
            None,
            None,
        ),
        (
            "kube-statefulset-replicas-mismatch-redis",
            "alphaswarm",
            None,
            None,
            "redis-master",
            None,
        ),
        ("kube-hpa-maxed-out", "alphaswarm", None, None, None, "alphaswarm-core"),
        # Exporters report from their own pods: their namespace and pod are not the subject.
        ("blackbox-probe-failed-jwks", None, None, None, None, None),
        ("postgresql-down", None, None, None, None, None),
    ],
)
def test_the_target_is_the_object_not_the_exporter(
    name: str,
    namespace: str | None,
    pod: str | None,
    deployment: str | None,
    statefulset: str | None,
    hpa: str | None,
) -> None:
    target = alert_target(parse_alertmanager(load(name)).alerts[0])
    assert (target.namespace, target.pod, target.deployment, target.statefulset, target.hpa) == (
        namespace,
        pod,
        deployment,
        statefulset,
        hpa,
    )


def test_blackbox_names_the_probed_url() -> None:
    target = alert_target(parse_alertmanager(load("blackbox-probe-failed-jwks")).alerts[0])
    assert target.instance == "https://your-tenant.us.auth0.com/.well-known/jwks.json"


def test_ingress_alerts_carry_the_ingress_namespace() -> None:
    target = alert_target(parse_alertmanager(load("nginx-high-http-5xx-error-rate")).alerts[0])
    assert (target.namespace, target.ingress) == ("alphaswarm", "alphaswarm")


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("kube-pod-crashlooping-coredns", False),  # kube-system is not ours
        ("kube-pod-crashlooping-ingress-controller", True),  # the runbook's own ingress-nginx
        ("kube-pod-crashlooping-cp", True),
        ("blackbox-probe-failed-jwks", True),  # reported from monitoring, about Auth0
        ("postgresql-down", True),
        ("celery-high-queue-length", True),
    ],
)
def test_scope(name: str, kept: bool) -> None:
    batch, ignored = in_scope(parse_alertmanager(load(name)), Workloads().scope)
    assert (batch is not None) is kept
    if not kept:
        assert "kube-system is outside the configured namespaces" in ignored[0]
