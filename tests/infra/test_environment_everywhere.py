"""Every shipped manifest and template says where it runs (issue 21, point 1).

The environment has no default (tasks/settings.py): a flow run that cannot tell treats itself
as production. Still, nothing shipped should leave it to that: each place a process of this
project (or of Prefect, on its behalf) is started sets REMEDIATE_ENVIRONMENT=production.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from deployments.table import PREFECT_YAML
from sandbox.cluster import SandboxCluster
from sandbox.flow_env import flow_env
from tasks.settings import Settings, environment_name
from tests.infra.manifests import INFRA, ROOT, documents, manifests

PROJECT_IMAGE = "ghcr.io/alphaswarm/alphaswarm-remediate"
PRODUCTION = {"name": "REMEDIATE_ENVIRONMENT", "value": "production"}


def _containers(node: Any) -> list[dict[str, Any]]:
    """Every container (and init container) spec anywhere in a manifest."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            else:
                found += _containers(value)
    elif isinstance(node, list):
        for item in node:
            found += _containers(item)
    return found


def _project_containers() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.relative_to(ROOT)}:{c['name']}", c)
        for path in manifests()
        for doc in documents(path)
        for c in _containers(doc)
        if str(c.get("image", "")).startswith(PROJECT_IMAGE)
    ]


def test_there_are_project_containers_to_check() -> None:
    names = {where for where, _ in _project_containers()}
    assert any(n.endswith(":intake") for n in names), names


@pytest.mark.parametrize(
    ("where", "container"), _project_containers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_container_of_the_image_in_a_manifest_sets_it(
    where: str, container: dict[str, Any]
) -> None:
    assert PRODUCTION in container.get("env", []), where


def test_the_work_pools_job_template_sets_it() -> None:
    template = json.loads((INFRA / "work-pool" / "kubernetes-base-job-template.json").read_text())
    manifest = template["job_configuration"]["job_manifest"]
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert PRODUCTION in container["env"]


def test_the_flow_runs_log_in_to_the_stores_as_the_official_images_require() -> None:
    """F's `psql` needs a role and a database, its `redis-cli` the password (issue 21, point 8):
    without them the data check is inconclusive on a real cluster."""
    template = json.loads((INFRA / "work-pool" / "kubernetes-base-job-template.json").read_text())
    manifest = template["job_configuration"]["job_manifest"]
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REMEDIATE_POSTGRES__USER"]["value"]
    assert env["REMEDIATE_POSTGRES__DATABASE"]["value"]
    secret = env["REMEDIATE_REDIS__PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (secret["name"], secret["key"]) == ("alphaswarm-remediate", "redis-password")
    example = (INFRA / "intake" / "examples" / "secret.example.yaml").read_text()
    assert "redis-password: REPLACE-WITH" in example


def test_every_deployment_in_prefect_yaml_sets_it_in_its_job_variables() -> None:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    assert document["deployments"]
    for deployment in document["deployments"]:
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["REMEDIATE_ENVIRONMENT"] == "production", deployment["name"]


def test_the_helm_values_set_it() -> None:
    worker = yaml.safe_load((INFRA / "helm" / "prefect-worker-values.yaml").read_text())
    assert PRODUCTION in worker["worker"]["extraEnvVars"]
    server = yaml.safe_load((INFRA / "helm" / "prefect-server-values.yaml").read_text())
    assert PRODUCTION in server["server"]["env"]


def test_the_image_sets_it() -> None:
    lines = (INFRA / "Dockerfile").read_text().splitlines()
    assert "ENV REMEDIATE_ENVIRONMENT=production" in lines


def test_the_sandbox_says_dev_explicitly() -> None:
    """What `remediate up`, `remediate sandbox up`, `demo` and the flow tests hand the flows:
    a sandbox is dev, said, not assumed."""
    assert flow_env("http://127.0.0.1:1", SandboxCluster())["REMEDIATE_ENVIRONMENT"] == "dev"


def test_unset_is_unknown_never_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_ENVIRONMENT", raising=False)
    assert Settings().environment is None
    assert environment_name(Settings().environment) == "unknown"
    monkeypatch.setenv("REMEDIATE_ENVIRONMENT", "staging")
    assert environment_name(Settings().environment) == "staging"
