"""The intake's manifests agree with the intake and with each other, and hold no secret.

What `kubectl apply --dry-run=server` cannot see: that the probes name routes the app serves,
that the ports line up across Deployment, Service and NetworkPolicy, that every secret setting
comes from a Secret and that the example Secret holds placeholders only.
"""

from __future__ import annotations

from typing import Any

import yaml

from deployments.intake.__main__ import DEFAULT_PORT
from deployments.intake.app import create_app
from tests.infra.manifests import INFRA, documents

INTAKE = INFRA / "intake"
# Settings that are secrets (tasks/settings.py SecretStr) and Prefect's API key.
SECRET_SETTINGS = {
    "REMEDIATE_INTAKE_TOKEN",
    "REMEDIATE_STORE__URL",
    "REMEDIATE_CONTROL_PLANE__TOKEN",
    "REMEDIATE_CELERY__BROKER_URL",
    "PREFECT_API_KEY",
}


def one(name: str) -> dict[str, Any]:
    (doc,) = documents(INTAKE / name)
    return doc


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("deployment.yaml")["spec"]["template"]["spec"]
    return spec


def containers() -> list[dict[str, Any]]:
    return [*pod_spec()["initContainers"], *pod_spec()["containers"]]


def test_secrets_come_from_the_secret_never_from_literals() -> None:
    example = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((INTAKE / "examples" / "secret.example.yaml").read_text())
        if d["metadata"]["namespace"] == "alphaswarm-admin"
    }
    for container in containers():
        for env in container.get("env", []):
            if env["name"] in SECRET_SETTINGS:
                assert "value" not in env, env["name"]
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["key"] in example[ref["name"]]["stringData"], env["name"]
    names = {e["name"] for c in containers() for e in c.get("env", [])}
    assert {"REMEDIATE_INTAKE_TOKEN", "REMEDIATE_STORE__URL", "PREFECT_API_URL"} <= names


def test_the_example_secrets_hold_placeholders_only() -> None:
    for doc in yaml.safe_load_all((INTAKE / "examples" / "secret.example.yaml").read_text()):
        assert "data" not in doc  # base64 would hide what is in it
        for key, value in doc["stringData"].items():
            assert "REPLACE" in value, f"{doc['metadata']['name']}/{key}"


def test_probes_name_routes_the_intake_serves() -> None:
    routes = {getattr(r, "path", None) for r in create_app("token", dispatch=False).routes}
    (intake,) = pod_spec()["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert intake[probe]["httpGet"]["path"] in routes
    assert intake["readinessProbe"]["httpGet"]["path"] == "/healthz"  # the store answers


def test_ports_line_up() -> None:
    (intake,) = pod_spec()["containers"]
    (port,) = intake["ports"]
    assert port["containerPort"] == DEFAULT_PORT
    assert intake["args"] == ["--host", "0.0.0.0", "--port", str(DEFAULT_PORT)]
    (service_port,) = one("service.yaml")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    (ingress,) = one("networkpolicy.yaml")["spec"]["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [DEFAULT_PORT]


def test_selectors_select_the_intake_pods() -> None:
    labels = one("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one("deployment.yaml")["spec"]["selector"]["matchLabels"],
        one("service.yaml")["spec"]["selector"],
        one("poddisruptionbudget.yaml")["spec"]["selector"]["matchLabels"],
        one("networkpolicy.yaml")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()


def test_runs_as_non_root_with_the_projects_service_account() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["serviceAccountName"] == "alphaswarm-remediate"  # infra/rbac.yaml
    assert spec["automountServiceAccountToken"] is False  # the intake never calls the API
    for container in containers():
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"] and container["resources"]["limits"]
    assert one("deployment.yaml")["spec"]["replicas"] == 2
    assert one("poddisruptionbudget.yaml")["spec"]["minAvailable"] == 1
