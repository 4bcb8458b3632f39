"""A smoke test with the real kubectl (the conformance suite covers the runbook in depth)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.cluster import SandboxCluster
from sandbox.resources import POD
from sandbox.runtime import ExecResult
from sandbox.server import SandboxServer
from tests.sandbox.factories import NS, make_pod

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.run(
        ["kubectl", "-n", NS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_kubectl_get_wide_and_exec_exit_code(
    cluster: SandboxCluster, server: SandboxServer, tmp_path: Path
) -> None:
    cluster.store.create(POD, make_pod("api-1", restarts=2, waiting="CrashLoopBackOff"))
    cluster.runtime.add_exec_handler(lambda ns, pod, c, argv: ExecResult("hi\n", "", 4))
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    out = _kubectl(kubeconfig, "get", "pods", "-o", "wide")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:4] == ["api-1", "0/1", "CrashLoopBackOff", "2"]
    out = _kubectl(kubeconfig, "exec", "api-1", "--", "anything")
    assert (out.returncode, out.stdout) == (4, "hi\n")
