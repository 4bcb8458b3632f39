"""RBAC the sandbox enforces (`sandbox.rbac`): request attributes as the API server derives them,
rule matching, and the 401/403 bodies it writes, over HTTP, the official client and kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sandbox.rbac import (
    ADMIN_TOKEN,
    Attributes,
    Policy,
    RbacError,
    forbidden,
    request_attributes,
)
from sandbox.server import SandboxServer

SA = "system:serviceaccount:alphaswarm-admin:alphaswarm-remediate"
RBAC_YAML = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: read}
rules:
  - {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list, watch]}
  - {apiGroups: [apps], resources: [deployments], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: read}
subjects: [{kind: ServiceAccount, name: alphaswarm-remediate, namespace: alphaswarm-admin}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: act, namespace: alphaswarm}
rules:
  - {apiGroups: [apps], resources: [deployments/scale], verbs: [patch]}
  - {apiGroups: [""], resources: [pods/exec], verbs: [create, get]}
  - {apiGroups: [apps], resources: [deployments], verbs: [patch], resourceNames: [alphaswarm-core]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: claims, namespace: alphaswarm}
rules:
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [get, list, watch, create, delete, deletecollection]
    resourceNames: [data-postgres-0]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: claims, namespace: alphaswarm}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: claims}
subjects: [{kind: ServiceAccount, name: alphaswarm-remediate, namespace: alphaswarm-admin}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: evict}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: act, namespace: alphaswarm}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: act}
subjects: [{kind: ServiceAccount, name: alphaswarm-remediate, namespace: alphaswarm-admin}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: evict, namespace: ingress-nginx}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: evict}
subjects: [{kind: Group, name: "system:serviceaccounts:alphaswarm-admin"}]
"""


def attrs(method: str, path: str, **query: str) -> Attributes:
    return request_attributes(SA, method, path, query)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/alphaswarm/pods", {}, ("list", "", "pods", "", "alphaswarm")),
        ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "", "pods", "", "")),
        ("GET", "/api/v1/watch/namespaces/x/pods", {}, ("watch", "", "pods", "", "x")),
        ("GET", "/api/v1/namespaces/x/pods/p/log", {}, ("get", "", "pods", "log", "x")),
        ("POST", "/api/v1/namespaces/x/pods/p/exec", {}, ("create", "", "pods", "exec", "x")),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/x/deployments/d/scale",
            {},
            ("patch", "apps", "deployments", "scale", "x"),
        ),
        ("DELETE", "/api/v1/namespaces/x/pods", {}, ("deletecollection", "", "pods", "", "x")),
        ("DELETE", "/api/v1/namespaces/x/pods/p", {}, ("delete", "", "pods", "", "x")),
        ("PUT", "/api/v1/nodes/n1", {}, ("update", "", "nodes", "", "")),
        ("GET", "/api/v1/namespaces/x", {}, ("get", "", "namespaces", "", "x")),
        ("PUT", "/api/v1/namespaces/x/status", {}, ("update", "", "namespaces", "status", "x")),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods",
            {},
            ("list", "metrics.k8s.io", "pods", "", "x"),
        ),
    ],
)
def test_attributes_are_derived_from_the_path_as_the_api_server_does(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    a = attrs(method, path, **query)
    assert a.resource_request
    assert (a.verb, a.group, a.resource, a.subresource, a.namespace) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"fieldSelector": "metadata.name=p"}, ("list", "p")),
        ({"fieldSelector": "metadata.name==p"}, ("list", "p")),
        # One term among others pins the name too (RequiresExactMatch looks at every term).
        ({"fieldSelector": "status.phase=Running,metadata.name=p"}, ("list", "p")),
        ({"fieldSelector": "metadata.name=p", "watch": "true"}, ("watch", "p")),
        ({"fieldSelector": "metadata.name=a\\,b"}, ("list", "a,b")),  # an escaped comma
        # No exact match: a list of everything, which a rule with resourceNames never allows.
        ({"fieldSelector": "metadata.name!=p"}, ("list", "")),
        ({"fieldSelector": "metadata.name = p"}, ("list", "")),  # Go does not trim the field
        ({"fieldSelector": "metadata.name=p,nonsense"}, ("list", "")),  # does not parse
        ({"fieldSelector": "metadata.name=a\\x"}, ("list", "")),  # an unknown escape
        ({"fieldSelector": "metadata.name=.."}, ("list", "")),  # not a valid path segment
        ({"labelSelector": "app=p"}, ("list", "")),
    ],
)
def test_a_list_for_one_name_is_authorized_by_that_name(
    query: dict[str, str], expected: tuple[str, str]
) -> None:
    a = attrs("GET", "/api/v1/namespaces/x/pods", **query)
    assert (a.verb, a.name) == expected


@pytest.mark.parametrize("path", ["/api", "/apis", "/api/v1", "/apis/apps/v1", "/version"])
def test_discovery_is_not_a_resource_request(path: str) -> None:
    assert not attrs("GET", path).resource_request


def test_the_forbidden_body_is_the_api_servers() -> None:
    error = forbidden(
        attrs("PATCH", "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-core")
    )
    body = error.response().body
    assert isinstance(body, bytes)
    assert body.decode() == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
        '"deployments.apps \\"alphaswarm-core\\" is forbidden: User \\"system:serviceaccount:'
        'alphaswarm-admin:alphaswarm-remediate\\" cannot patch resource \\"deployments\\" in API'
        ' group \\"apps\\" in the namespace \\"alphaswarm\\"","reason":"Forbidden","details":'
        '{"name":"alphaswarm-core","group":"apps","kind":"deployments"},"code":403}'
    )


def test_forbidden_messages_for_subresources_collections_and_the_cluster_scope() -> None:
    log = forbidden(attrs("GET", "/api/v1/namespaces/x/pods/p/log"))
    assert log.message == (
        f'pods "p" is forbidden: User "{SA}" cannot get resource "pods/log" in API group ""'
        ' in the namespace "x"'
    )
    assert log.details == {"name": "p", "kind": "pods"}
    nodes = forbidden(attrs("GET", "/api/v1/nodes"))
    assert nodes.message == (
        f'nodes is forbidden: User "{SA}" cannot list resource "nodes" in API group ""'
        " at the cluster scope"
    )


def policy() -> Policy:
    import yaml

    return Policy.from_documents(yaml.safe_load_all(RBAC_YAML))


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/pods", True),  # ClusterRoleBinding: every namespace
        ("GET", "/api/v1/namespaces/kube-system/pods/p/log", True),
        ("GET", "/api/v1/namespaces/kube-system/pods/p/exec", False),  # pods/log is not pods/*
        ("PATCH", "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-core/scale", True),
        ("PATCH", "/apis/apps/v1/namespaces/alphaswarm-admin/deployments/cp/scale", False),
        ("PUT", "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-core/scale", False),
        ("PATCH", "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-core", True),
        ("PATCH", "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-client", False),
        ("DELETE", "/api/v1/namespaces/ingress-nginx/pods/p", True),  # ClusterRole, bound here
        ("DELETE", "/api/v1/namespaces/alphaswarm/pods/p", False),
        ("DELETE", "/api/v1/namespaces/ingress-nginx/pods", False),  # deletecollection
        ("GET", "/apis/apps/v1/watch/deployments", False),
    ],
)
def test_rules_match_as_rbac_does(method: str, path: str, allowed: bool) -> None:
    assert (policy().allowing(attrs(method, path)) is not None) is allowed


CLAIMS = "/api/v1/namespaces/alphaswarm/persistentvolumeclaims"


@pytest.mark.parametrize(
    ("method", "path", "query", "allowed"),
    [
        ("GET", CLAIMS + "/data-postgres-0", {}, True),
        ("GET", CLAIMS + "/data-redis-master-0", {}, False),
        ("DELETE", CLAIMS + "/data-postgres-0", {}, True),
        ("DELETE", CLAIMS + "/data-redis-master-0", {}, False),
        # list and watch only with a fieldSelector naming the object
        ("GET", CLAIMS, {}, False),
        ("GET", CLAIMS, {"labelSelector": "app=postgres"}, False),
        ("GET", CLAIMS, {"fieldSelector": "metadata.name=data-postgres-0"}, True),
        ("GET", CLAIMS, {"fieldSelector": "metadata.name==data-postgres-0"}, True),
        ("GET", CLAIMS, {"fieldSelector": "metadata.name=data-redis-master-0"}, False),
        ("GET", CLAIMS, {"fieldSelector": "metadata.name=data-postgres-0", "watch": "1"}, True),
        ("GET", CLAIMS, {"watch": "1"}, False),
        # create has no name to match (a POST to the collection): resourceNames never allow it
        ("POST", CLAIMS, {}, False),
        # nor does deletecollection, whatever its selectors
        ("DELETE", CLAIMS, {"fieldSelector": "metadata.name=data-postgres-0"}, False),
        # nor another namespace
        (
            "GET",
            "/api/v1/namespaces/alphaswarm-admin/persistentvolumeclaims/data-postgres-0",
            {},
            False,
        ),
    ],
)
def test_resource_names_restrict_as_the_api_server_does(
    method: str, path: str, query: dict[str, str], allowed: bool
) -> None:
    assert (policy().allowing(attrs(method, path, **query)) is not None) is allowed


def test_other_users_get_nothing_from_the_bindings() -> None:
    other = request_attributes("system:serviceaccount:default:default", "GET", "/api/v1/pods", {})
    assert policy().allowing(other) is None


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rbac_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rbac") / "rbac.yaml"
    path.write_text(RBAC_YAML)
    return path


@pytest.fixture(scope="module")
def guarded(rbac_file: Path) -> Iterator[SandboxServer]:
    with SandboxServer(rbac=rbac_file, as_user=SA) as srv:
        srv.controllers.stop()
        yield srv


def call(server: SandboxServer, method: str, path: str, token: str | None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return httpx.request(method, server.url + path, headers=headers, trust_env=False, **kw)


MERGE = {"Content-Type": "application/merge-patch+json"}
CORE = "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-core"
CLIENT = "/apis/apps/v1/namespaces/alphaswarm/deployments/alphaswarm-client"


def test_the_kubeconfig_token_is_the_service_account(guarded: SandboxServer) -> None:
    assert call(guarded, "GET", "/api/v1/namespaces/alphaswarm/pods", "sandbox").status_code == 200
    response = call(guarded, "DELETE", "/api/v1/namespaces/alphaswarm/pods/anything", "sandbox")
    assert response.status_code == 403
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'pods "anything" is forbidden: User "{SA}" cannot delete resource "pods"'
        ' in API group "" in the namespace "alphaswarm"',
        "reason": "Forbidden",
        "details": {"name": "anything", "kind": "pods"},
        "code": 403,
    }
    # The journal records the refusal, and nothing changed.
    last = guarded.cluster.journal.requests("DELETE", "/pods/anything")[-1]
    assert last.status == 403
    assert guarded.authorizer is not None
    assert guarded.authorizer.decisions()[-1].grant is None


def test_a_forbidden_write_changes_nothing(guarded: SandboxServer) -> None:
    before = call(guarded, "GET", CLIENT, "sandbox").json()
    patch = {"spec": {"replicas": 9}}
    response = call(guarded, "PATCH", CLIENT, "sandbox", json=patch, headers=MERGE)
    assert response.status_code == 403, response.text
    assert call(guarded, "GET", CLIENT, "sandbox").json() == before
    assert guarded.cluster.journal.mutations(CLIENT) == []


def test_a_named_list_gets_through_and_an_unnamed_one_or_a_create_does_not(
    guarded: SandboxServer,
) -> None:
    named = {"fieldSelector": "metadata.name==data-postgres-0"}
    response = call(guarded, "GET", CLAIMS, "sandbox", params=named)
    assert response.status_code == 200, response.text
    assert [c["metadata"]["name"] for c in response.json()["items"]] == ["data-postgres-0"]
    assert call(guarded, "GET", CLAIMS, "sandbox").status_code == 403
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim"}
    created = call(
        guarded, "POST", CLAIMS, "sandbox", json={**claim, "metadata": {"name": "data-postgres-0"}}
    )
    assert created.status_code == 403
    assert created.json()["message"] == (
        f'persistentvolumeclaims is forbidden: User "{SA}" cannot create resource'
        ' "persistentvolumeclaims" in API group "" in the namespace "alphaswarm"'
    )


def test_an_unknown_token_is_unauthorized_even_for_discovery(guarded: SandboxServer) -> None:
    for path in ("/api/v1/pods", "/version"):
        response = call(guarded, "GET", path, "stolen")
        assert response.status_code == 401
        assert response.json()["reason"] == "Unauthorized"
        assert response.json()["message"] == "Unauthorized"


def test_discovery_is_open_to_the_service_account(guarded: SandboxServer) -> None:
    for path in ("/api", "/apis", "/api/v1", "/apis/apps/v1", "/version"):
        assert call(guarded, "GET", path, "sandbox").status_code == 200, path


def test_the_harness_and_the_admin_token_are_not_checked(guarded: SandboxServer) -> None:
    scale = {"spec": {"replicas": 3}}
    for token in (None, ADMIN_TOKEN):
        response = call(guarded, "PATCH", CLIENT + "/scale", token, json=scale, headers=MERGE)
        assert response.status_code == 200, response.text


def test_the_sandboxs_own_routes_are_not_the_kubernetes_api(guarded: SandboxServer) -> None:
    assert call(guarded, "GET", "/sandbox/v1/incidents", "stolen").status_code == 200
    assert call(guarded, "GET", "/.well-known/jwks.json", "stolen").status_code == 200
    # Nor is a path no route serves: its 404 does not depend on who asks.
    assert call(guarded, "GET", "/manage/nothing-here", "sandbox-cp-token").status_code == 404


def test_the_official_client_gets_the_403(guarded: SandboxServer, tmp_path: Path) -> None:
    kubeconfig = guarded.write_kubeconfig(tmp_path / "kubeconfig")
    api = client.AppsV1Api(config.new_client_from_config(str(kubeconfig)))
    try:
        assert api.read_namespaced_deployment("alphaswarm-core", "alphaswarm").metadata
        with pytest.raises(ApiException) as raised:
            api.patch_namespaced_deployment(
                "alphaswarm-client", "alphaswarm", {"metadata": {"labels": {"a": "b"}}}
            )
        assert raised.value.status == 403
        assert "cannot patch resource" in str(raised.value.body)
    finally:
        api.api_client.close()


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_reports_forbidden(rbac_file: Path, tmp_path: Path) -> None:
    """kubectl sends no token over plain HTTP: as `sandbox up --rbac` runs, that is the user."""
    with SandboxServer(rbac=rbac_file, as_user=SA, anonymous_as_user=True) as sandbox:
        sandbox.controllers.stop()
        out = _kubectl(sandbox, tmp_path, "get", "pods")
        assert out.returncode == 0, out.stderr
        out = _kubectl(sandbox, tmp_path, "scale", "deployment/alphaswarm-cp", "--replicas=2")
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): deployments.apps "alphaswarm-cp" is forbidden: User'
        f' "{SA}" cannot patch resource "deployments/scale" in API group "apps" in the namespace'
        ' "alphaswarm-admin"'
    )


def _kubectl(sandbox: SandboxServer, tmp_path: Path, *args: str) -> Any:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.run(
        ["kubectl", "-n", "alphaswarm-admin", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_rbac_and_the_user_go_together(rbac_file: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        SandboxServer(rbac=rbac_file)


def test_a_file_that_grants_the_user_nothing_is_refused(rbac_file: Path, tmp_path: Path) -> None:
    with pytest.raises(RbacError, match="binds no Role"):
        SandboxServer(rbac=rbac_file, as_user="system:serviceaccount:default:default")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [")
    with pytest.raises(RbacError, match="cannot read"):
        SandboxServer(rbac=broken, as_user=SA)


# -- `remediate sandbox up --rbac FILE --as USER` ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rbac", "{file}"], "--rbac and --as go together"),
        (["--as", SA], "--rbac and --as go together"),
        (["--rbac", "{file}", "--as", "system:serviceaccount:default:default"], "binds no Role"),
    ],
)
def test_sandbox_up_refuses_rbac_it_cannot_enforce(
    rbac_file: Path, args: list[str], says: str
) -> None:
    from typer.testing import CliRunner

    from remediate.cli import app

    argv = ["sandbox", "up", *(a.format(file=rbac_file) for a in args)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())
