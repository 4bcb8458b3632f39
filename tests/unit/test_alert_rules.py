"""Alerts as public rule sets really send them (tests/fixtures/alerts/rules/, see its README):
every payload parses, names the object the rule is about (not the exporter that reported it),
and falls inside or outside the configured namespaces as an operator would expect. And the
rules and route under infra/ that send them: the same expressions, every alert a triage branch,
the route to the intake carrying exactly those alerts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from deployments.intake.app import WEBHOOK_PATH
from tasks.diagnoses.triage import alert_hint
from tasks.models.alerts import Alert, alert_target, in_scope, parse_alertmanager
from tasks.models.diagnosis import Scenario
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


# -- infra/prometheus and infra/alertmanager: the rules that send these alerts, and the route ---
# Both are prometheus-operator CRDs or Alertmanager configuration, which the sandbox does not
# serve: `kubectl apply --dry-run=server` cannot check them (tests/infra/test_manifests.py
# checks the built-in kinds), so their shape is checked here.

INFRA = Path(__file__).resolve().parents[2] / "infra"
RULE_FILE = INFRA / "prometheus" / "alphaswarm-remediate-rules.yaml"
RECEIVER = INFRA / "alertmanager" / "receiver.yaml"
AMCONFIG = INFRA / "alertmanager" / "alertmanagerconfig.yaml"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def yaml_file(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml_file(RULE_FILE)["spec"]["groups"] for r in g["rules"]]


def rule_names() -> list[str]:
    return [r["alert"] for r in rules()]


def fixture_alerts() -> dict[str, Alert]:
    """One parsed alert per alert name the public-rule fixtures hold."""
    found: dict[str, Alert] = {}
    for path in sorted(RULES.glob("*.json")):
        for alert in parse_alertmanager(load(path.stem)).alerts:
            found.setdefault(alert.name, alert)
    return found


def balanced(expr: str) -> bool:
    """Brackets pair up outside string literals: the PromQL mistakes a YAML edit makes."""
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote = ""
    for ch in expr:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in closing and (not stack or stack.pop() != closing[ch]):
            return False
    return not stack and not quote


def test_the_prometheus_rule_is_well_formed() -> None:
    doc = yaml_file(RULE_FILE)
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    groups = doc["spec"]["groups"]
    assert groups and len({g["name"] for g in groups}) == len(groups)
    assert len(set(rule_names())) == len(rules())
    for rule in rules():
        assert set(rule) <= RULE_KEYS, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule["alert"]
        assert balanced(rule["expr"]), rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_rule_is_the_public_one_the_fixtures_record() -> None:
    """Same alert name and the same expression (whitespace aside) as the payload's
    generatorURL: the labels the triage reads are the ones this rule produces."""
    alerts = fixture_alerts()
    for rule in rules():
        alert = alerts.get(rule["alert"])
        assert alert is not None, f"no fixture payload for {rule['alert']}"
        query = parse_qs(urlparse(alert.generator_url).query)["g0.expr"][0]
        assert re.sub(r"\s+", "", rule["expr"]) == re.sub(r"\s+", "", query), rule["alert"]
        assert rule["labels"]["severity"] == alert.labels["severity"], rule["alert"]


def test_every_rule_points_triage_at_a_branch_and_every_branch_has_a_rule() -> None:
    alerts = fixture_alerts()
    hinted = {name: alert_hint(alerts[name]) for name in rule_names()}
    assert [name for name, hint in hinted.items() if hint is None] == []
    assert set(hinted.values()) == set(Scenario)


def route_regex() -> str:
    (route,) = yaml_file(RECEIVER)["route"]["routes"]
    (matcher,) = route["matchers"]
    name, value = re.fullmatch(r'\s*(\w+)\s*=~\s*"(.*)"\s*', matcher).groups()  # type: ignore[union-attr]
    assert name == "alertname"
    return str(value)


def test_the_route_sends_the_intake_exactly_the_rules_alerts() -> None:
    regex = route_regex()
    # Alertmanager anchors matcher regexes: fullmatch is what it does.
    assert all(re.fullmatch(regex, name) for name in rule_names())
    assert sorted(regex.split("|")) == sorted(rule_names())
    (matcher,) = yaml_file(AMCONFIG)["spec"]["route"]["matchers"]
    assert (matcher["name"], matcher["matchType"], matcher["value"]) == ("alertname", "=~", regex)


def test_the_receiver_posts_to_the_intake_with_a_token_from_a_file() -> None:
    config = yaml_file(RECEIVER)
    (route,) = config["route"]["routes"]
    (receiver,) = config["receivers"]
    assert route["receiver"] == receiver["name"]
    assert route["continue"] is True  # remediation is not the only receiver
    (webhook,) = receiver["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["max_alerts"] > 0
    auth = webhook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and auth["credentials_file"].startswith("/")
    assert "credentials" not in auth  # the token is never written into the configuration
    service = yaml_file(INFRA / "intake" / "service.yaml")
    (port,) = service["spec"]["ports"]
    meta = service["metadata"]
    host = f"{meta['name']}.{meta['namespace']}.svc:{port['port']}"
    assert webhook["url"] == f"http://{host}{WEBHOOK_PATH}"


def test_the_alertmanager_config_crd_matches_and_reads_the_token_from_a_secret() -> None:
    doc = yaml_file(AMCONFIG)
    assert (doc["apiVersion"], doc["kind"]) == (
        "monitoring.coreos.com/v1alpha1",
        "AlertmanagerConfig",
    )
    spec = doc["spec"]
    (receiver,) = spec["receivers"]
    assert spec["route"]["receiver"] == receiver["name"]
    (webhook,) = receiver["webhookConfigs"]
    (plain,) = yaml_file(RECEIVER)["receivers"][0]["webhook_configs"]
    assert webhook["url"] == plain["url"]
    assert webhook["sendResolved"] is True and webhook["maxAlerts"] == plain["max_alerts"]
    ref = webhook["httpConfig"]["authorization"]["credentials"]
    # The Secret it names is the example's, in the AlertmanagerConfig's own namespace.
    example = INFRA / "intake" / "examples" / "secret.example.yaml"
    secrets = [
        d
        for d in yaml.safe_load_all(example.read_text())
        if d["metadata"]["namespace"] == doc["metadata"]["namespace"]
    ]
    assert [s["metadata"]["name"] for s in secrets] == [ref["name"]]
    assert ref["key"] in secrets[0]["stringData"]
    assert plain["http_config"]["authorization"]["credentials_file"].endswith(
        f"/{ref['name']}/{ref['key']}"
    )
