"""Every Kubernetes manifest under infra/ passes `kubectl apply --dry-run=server` against the
sandbox, and the dry run leaves the sandbox as it was.

The real kubectl binary does what it does against a cluster: it reads /openapi/v3 to learn that
the server validates fields (sandbox/openapi.py), computes its apply, and sends it with
`dryRun=All&fieldValidation=Strict`. The sandbox then refuses fields the Kubernetes API does not
define (a misspelled `readinesProbe` is a 400, as on a real server) and its few semantic checks
(containers need a name and an image, ...) apply. What it does not check is everything a real
API server's validation and admission would (value formats, immutable fields, quota, PSA), and
it does not require the namespace to exist: the test checks that one itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.openapi import strict_unknown_fields
from sandbox.resources import KINDS, NAMESPACE
from sandbox.server import SandboxServer
from tests.infra.manifests import (
    INFRA,
    ROOT,
    crd_manifests,
    documents,
    manifests,
    served_manifests,
)

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
if KUBECTL is None:  # a missing binary is a broken machine, not a reason to skip
    raise RuntimeError("kubectl must be on the PATH for the infra manifest tests")

# Namespaces a real cluster has before these manifests are applied: kube-prometheus-stack's.
# (alphaswarm-admin, alphaswarm and ingress-nginx are the sandbox's seeded ones.)
PREREQUISITE_NAMESPACES = ("monitoring",)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        # Seeded, but still: the controllers' motion would change resourceVersions under the
        # "nothing persisted" comparison, and nothing here needs it.
        server.controllers.stop()
        for name in PREREQUISITE_NAMESPACES:
            server.cluster.store.create(
                NAMESPACE,
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        yield server


@pytest.fixture(scope="module")
def kubectl(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl")
    kubeconfig = sandbox.write_kubeconfig(home / "kubeconfig")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # a private discovery cache per sandbox
        "KUBECONFIG": str(kubeconfig),
        "NO_PROXY": "127.0.0.1,localhost",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(kubeconfig), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    return run


def state(sandbox: SandboxServer) -> dict[tuple[str, str, str], str]:
    """Every stored object's resourceVersion, by kind, namespace and name."""
    out = {}
    for kind in KINDS:
        for obj in sandbox.cluster.store.list(kind)[0]:
            meta = obj["metadata"]
            out[(kind.key, meta.get("namespace", ""), meta["name"])] = meta["resourceVersion"]
    return out


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_manifest_is_checked_one_way_or_the_other() -> None:
    """A manifest of a kind neither the sandbox nor the CRD checks cover would go unchecked."""
    covered = set(served_manifests()) | set(crd_manifests())
    assert [rel(p) for p in manifests() if p not in covered] == []
    served = {rel(p) for p in served_manifests()}
    assert {
        "infra/rbac.yaml",
        "infra/intake/deployment.yaml",
        "infra/intake/service.yaml",
        "infra/intake/poddisruptionbudget.yaml",
        "infra/intake/networkpolicy.yaml",
        "infra/intake/examples/secret.example.yaml",
    } <= served


@pytest.mark.parametrize("path", served_manifests(), ids=lambda p: rel(p))
def test_server_dry_run_accepts_it_and_persists_nothing(
    path: Path, sandbox: SandboxServer, kubectl: Kubectl
) -> None:
    for doc in documents(path):
        namespace = (doc.get("metadata") or {}).get("namespace")
        if namespace:  # a real API server refuses an object in a namespace that is not there
            assert kubectl("get", "namespace", namespace).returncode == 0, namespace
    before = state(sandbox)
    done = kubectl("apply", "--dry-run=server", "-f", rel(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(documents(path))
    assert all(line.endswith("(server dry run)") for line in lines), done.stdout
    assert state(sandbox) == before


def test_an_unknown_field_is_refused(
    sandbox: SandboxServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The dry run checks field names: a typo in a probe is an error, not a silent no-op."""
    text = (INFRA / "intake" / "deployment.yaml").read_text()
    broken = tmp_path / "deployment.yaml"
    broken.write_text(text.replace("readinessProbe:", "readinesProbe:", 1))
    done = kubectl("apply", "--dry-run=server", "-f", str(broken))
    assert done.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].readinesProbe"' in done.stderr
    assert "--validate=false" not in " ".join(done.args)


def test_the_seeded_cluster_passes_its_own_strict_check(sandbox: SandboxServer) -> None:
    """`kubectl replace` of any seeded object sends it back whole under fieldValidation=Strict:
    the sandbox's own objects must hold only fields the API defines."""
    unknown = {
        f"{kind.kind} {obj['metadata']['name']}": found
        for kind in KINDS
        for obj in sandbox.cluster.store.list(kind)[0]
        if (found := strict_unknown_fields(kind, obj))
    }
    assert unknown == {}
