"""Nobody reaches the switches without credentials (issue 21, point 2).

The kill switch is a Prefect Variable, an approval is a resumed pause, a run that applies is a
create_flow_run: all are Prefect API calls. The API takes Prefect's own basic auth
(PREFECT_SERVER_API_AUTH_STRING) from the `prefect-api-auth` Secret, every client of it reads
the same key as PREFECT_API_AUTH_STRING, and a NetworkPolicy admits only those clients.

The first test runs a real Prefect server with the setting and shows what a caller without the
string gets (401) and one with it (the variable set), through Prefect's own CLI.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from remediate.processes import free_port, prefect_cli
from tasks.settings import Safety
from tests.infra.manifests import INFRA, documents
from tests.prefect_plugin import seed_prefect_home

SECRET, KEY = "prefect-api-auth", "auth-string"
AUTH_STRING = "remediate:test-only-" + uuid.uuid4().hex
KILL_SWITCH = Safety().kill_switch_variable
FROM_SECRET = {"secretKeyRef": {"name": SECRET, "key": KEY}}


# -- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` with PREFECT_SERVER_API_AUTH_STRING set; its API URL."""
    home = tmp_path_factory.mktemp("prefect-auth")
    seed_prefect_home(home)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_AUTH_STRING=AUTH_STRING,
    )
    argv = [prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [*argv, "--no-ui", "--no-services"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:  # /api/health answers without the string: the kubelet's probes need it
            assert process.poll() is None, (home / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.2)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def cli(api: str, *args: str, auth: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env["PREFECT_HOME"] = str(Path(env.get("TMPDIR", "/tmp")) / f"prefect-cli-{uuid.uuid4().hex}")
    if auth is not None:
        env["PREFECT_API_AUTH_STRING"] = auth
    return subprocess.run(
        [prefect_cli(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def variable(api: str) -> Any:
    answer = httpx.get(f"{api}/variables/name/{KILL_SWITCH}", headers=basic(AUTH_STRING))
    return answer.json()["value"] if answer.status_code == 200 else None


def test_the_kill_switch_cannot_be_set_without_the_auth_string(server: str) -> None:
    refused = cli(server, "variable", "set", KILL_SWITCH, "true", auth=None)
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr
    wrong = cli(server, "variable", "set", KILL_SWITCH, "true", auth="remediate:guessed")
    assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr
    assert variable(server) is None

    done = cli(server, "variable", "set", KILL_SWITCH, "true", auth=AUTH_STRING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert variable(server) is True

    turned_off = cli(server, "variable", "set", KILL_SWITCH, "false", "--overwrite", auth=None)
    assert turned_off.returncode != 0 and "401" in turned_off.stdout + turned_off.stderr
    assert variable(server) is True  # the switch stays on for whoever lacks the string


# Fixed ids: pytest-xdist's workers must collect the same test ids.
SOME_RUN, SOME_DEPLOYMENT = (
    "0e6f6bbc-4a7f-42e4-995d-7808c799439a",
    "5b057e8e-7ecd-4d30-926b-a3da52febd1a",
)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # An approval: resuming a paused run with the approver's input.
        ("POST", f"/flow_runs/{SOME_RUN}/resume", {"run_input": {"approved": True}}),
        # A run that applies: created from a deployment with dry_run off.
        ("POST", f"/deployments/{SOME_DEPLOYMENT}/create_flow_run", {"parameters": {}}),
        # The kill switch, through the REST API itself.
        ("POST", "/variables/", {"name": "remediate_kill_switch", "value": "false"}),
        ("GET", "/flow_runs/filter", None),
    ],
)
def test_the_api_answers_401_to_a_caller_without_it(
    server: str, method: str, path: str, body: Any
) -> None:
    answer = httpx.request(method, server + path, json=body)
    assert answer.status_code == 401
    wrong = httpx.request(method, server + path, json=body, headers=basic("remediate:guessed"))
    assert wrong.status_code == 401
    right = httpx.request(method, server + path, json=body, headers=basic(AUTH_STRING))
    assert right.status_code != 401


# -- the manifests ---------------------------------------------------------------------------


def helm(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((INFRA / "helm" / name).read_text())
    return loaded


def job_template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (INFRA / "work-pool" / "kubernetes-base-job-template.json").read_text()
    )
    return loaded


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_the_server_takes_the_auth_string_from_the_secret() -> None:
    # prefect-server chart: server.basicAuth.existingSecret -> PREFECT_SERVER_API_AUTH_STRING
    # from that Secret's key `auth-string` (templates/server-deployment.yaml).
    assert helm("prefect-server-values.yaml")["server"]["basicAuth"] == {
        "enabled": True,
        "existingSecret": SECRET,
    }


def test_the_worker_takes_it_from_the_secret_and_hands_the_jobs_a_reference() -> None:
    worker = helm("prefect-worker-values.yaml")["worker"]
    assert worker["selfHostedServerApiConfig"]["basicAuth"] == {
        "enabled": True,
        "existingSecret": SECRET,
    }
    extra = {e["name"]: e.get("value") for e in worker["extraEnvVars"]}
    prefix = "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_"
    assert extra[prefix + "NAME"] == SECRET and extra[prefix + "KEY"] == KEY


def test_the_flow_runs_job_template_reads_it_from_the_secret() -> None:
    manifest = template_pod()
    (container,) = manifest["spec"]["containers"]
    entry = env_of(container)["PREFECT_API_AUTH_STRING"]
    assert "value" not in entry
    ref = entry["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (SECRET, KEY)


def template_pod() -> dict[str, Any]:
    pod: dict[str, Any] = job_template()["job_configuration"]["job_manifest"]["spec"]["template"]
    return pod


def intake_pod() -> dict[str, Any]:
    (deployment,) = documents(INFRA / "intake" / "deployment.yaml")
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def test_the_intake_reads_it_from_the_secret() -> None:
    (container,) = intake_pod()["spec"]["containers"]
    entry = env_of(container)["PREFECT_API_AUTH_STRING"]
    assert "value" not in entry and entry["valueFrom"] == FROM_SECRET


def test_the_example_secret_has_the_key_the_chart_wants_and_no_real_value() -> None:
    docs = yaml.safe_load_all((INFRA / "intake" / "examples" / "secret.example.yaml").read_text())
    (secret,) = [d for d in docs if d["metadata"]["name"] == SECRET]
    assert secret["metadata"]["namespace"] == "alphaswarm-admin"  # the server's and the intake's
    assert "REPLACE" in secret["stringData"][KEY] and ":" in secret["stringData"][KEY]


# The labels the prefect-server and prefect-worker charts give their pods
# (common.labels.standard plus the component), with fullnameOverride as infra/helm/ sets it.
SERVER_POD = {
    "app.kubernetes.io/name": "prefect-server",
    "app.kubernetes.io/instance": "prefect-server",
    "app.kubernetes.io/component": "server",
}
WORKER_POD = {
    "app.kubernetes.io/name": "prefect-worker",
    "app.kubernetes.io/instance": "prefect-worker",
    "app.kubernetes.io/component": "worker",
}
INGRESS_CONTROLLER = {
    "app.kubernetes.io/name": "ingress-nginx",
    "app.kubernetes.io/component": "controller",
}


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # no matchExpressions used here
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admits(policy: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    """Whether an Ingress rule of `policy` (in alphaswarm-admin) lets this pod in."""
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            ns_selector = peer.get("namespaceSelector")
            same_namespace = ns_selector is None and namespace == "alphaswarm-admin"
            other = ns_selector is not None and matches(
                ns_selector, {"kubernetes.io/metadata.name": namespace}
            )
            if (same_namespace or other) and matches(peer.get("podSelector", {}), labels):
                return True
    return False


def server_policy() -> dict[str, Any]:
    (policy,) = documents(INFRA / "helm" / "prefect-server-networkpolicy.yaml")
    return policy


def test_the_network_policy_selects_the_prefect_server_pods_and_only_them() -> None:
    policy = server_policy()
    assert policy["metadata"]["namespace"] == "alphaswarm-admin"
    assert matches(policy["spec"]["podSelector"], SERVER_POD)
    assert not matches(policy["spec"]["podSelector"], WORKER_POD)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} == {4200}


def test_the_network_policy_admits_the_intake_the_worker_its_runs_and_the_ingress_only() -> None:
    policy = server_policy()
    flow_run = template_pod()["metadata"]["labels"]
    assert admits(policy, "alphaswarm-admin", intake_pod()["metadata"]["labels"])
    assert admits(policy, "alphaswarm-admin", WORKER_POD)
    assert admits(policy, "alphaswarm-admin", flow_run)
    assert admits(policy, "ingress-nginx", INGRESS_CONTROLLER)
    # Everyone else: a workload of the platform, anything in monitoring, the runbook's targets.
    assert not admits(policy, "alphaswarm", {"app": "alphaswarm-core"})
    assert not admits(policy, "alphaswarm-admin", {"app": "alphaswarm-cp"})
    assert not admits(policy, "monitoring", {"app.kubernetes.io/name": "prometheus"})
    assert not admits(policy, "ingress-nginx", {"app.kubernetes.io/name": "default-backend"})
    assert not admits(policy, "alphaswarm", INGRESS_CONTROLLER)  # the labels, elsewhere


def test_the_intake_may_reach_the_server_it_is_admitted_by() -> None:
    """The intake's own policy lets it out to the pods this one guards."""
    (intake_policy,) = documents(INFRA / "intake" / "networkpolicy.yaml")
    egress = [p for r in intake_policy["spec"]["egress"] for p in r.get("to", [])]
    assert any(matches(p.get("podSelector", {}), SERVER_POD) for p in egress)
