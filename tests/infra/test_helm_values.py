"""The Helm values under infra/helm/ use only keys the official Prefect charts document.

There is no `helm` binary here, so the charts are never rendered: a misspelled key would be
ignored by `helm install` without a word (values.yaml keys the schema does not close), and this
is the check that remains. tests/fixtures/prefect_helm_keys.json lists every key path of the
charts' values.schema.json and values.yaml at the commit it names, with the schema's types
(regenerate it with `python -m tests.infra.prefect_helm_keys`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.infra.manifests import INFRA, ROOT
from tests.infra.prefect_helm_keys import FIXTURE

CHARTS = json.loads(FIXTURE.read_text())["charts"]
VALUES = {
    "prefect-server": INFRA / "helm" / "prefect-server-values.yaml",
    "prefect-worker": INFRA / "helm" / "prefect-worker-values.yaml",
}
JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def paths(node: dict[str, Any], chart: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(key path, value) for every key set, stopping where the chart leaves things free-form."""
    out = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.append((path, value))
        if isinstance(value, dict) and path not in chart["open"]:
            out += paths(value, chart, path)
    return out


def values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES[name].read_text())
    return loaded


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_key_is_documented_by_the_chart(name: str) -> None:
    chart = CHARTS[name]
    unknown = [p for p, _ in paths(values(name), chart) if p not in chart["keys"]]
    assert unknown == [], f"{VALUES[name].relative_to(ROOT)}: keys the chart does not document"


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_value_has_a_type_the_schema_allows(name: str) -> None:
    chart = CHARTS[name]
    wrong = []
    for path, value in paths(values(name), chart):
        allowed = chart["keys"].get(path) or []
        kind = JSON_TYPES[type(value)]
        ok = kind in allowed or (kind == "integer" and "number" in allowed)
        if allowed and not ok:
            wrong.append(f"{path}: {kind}, the schema allows {allowed}")
    assert wrong == []


def test_the_fixture_names_its_source() -> None:
    source = json.loads(FIXTURE.read_text())
    assert source["source"] == "https://github.com/PrefectHQ/prefect-helm"
    assert len(source["commit"]) == 40
    assert set(source["charts"]) == set(VALUES)


def test_the_server_reads_its_database_from_a_secret() -> None:
    server = values("prefect-server")
    assert server["postgresql"]["enabled"] is False
    assert server["externalDatabase"]["existingSecret"]
    assert server["externalDatabase"]["connectionStringSecretKey"]
    # No literal credentials anywhere in the values.
    for literal in ("connectionString", "password", "username"):
        assert not server["externalDatabase"].get(literal)
    assert "secret" not in server or not server["secret"].get("password")


def test_the_worker_serves_the_projects_work_pool_from_the_base_job_template() -> None:
    worker = values("prefect-worker")["worker"]
    deployments = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    pools = {d["work_pool"]["name"] for d in deployments["deployments"]}
    queues = {d["work_pool"]["work_queue_name"] for d in deployments["deployments"]}
    assert pools == {worker["config"]["workPool"]} == {"alphaswarm-remediate"}
    assert queues <= set(worker["config"]["workQueues"])
    assert worker["config"]["type"] == "kubernetes"
    assert worker["apiConfig"] == "selfHostedServer"
    assert worker["config"]["baseJobTemplate"]["existingConfigMapName"]
    # The worker and the intake reach the same server: the Service prefect-server-values names.
    server = values("prefect-server")
    api = worker["selfHostedServerApiConfig"]["apiUrl"]
    port = server["service"]["port"]
    assert (
        api == f"http://{server['fullnameOverride']}.alphaswarm-admin.svc.cluster.local:{port}/api"
    )
    intake = yaml.safe_load((INFRA / "intake" / "deployment.yaml").read_text())
    env = {e["name"]: e for e in intake["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PREFECT_API_URL"]["value"] == api


def test_the_base_job_template_the_worker_points_at_exists() -> None:
    template = INFRA / "work-pool" / "kubernetes-base-job-template.json"
    body = json.loads(template.read_text())
    assert {"job_configuration", "variables"} <= set(body)
