"""Point the flows' settings at a sandbox's JWKS and control plane, as `sandbox up` prints them.

The shared `sandbox` fixture sets only the kubeconfig; scenario D and triage also reach the JWKS
URL from this process, which must be the sandbox's, never the real Auth0 tenant.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sandbox.flow_env import flow_env
from sandbox.resources import POD
from sandbox.server import SandboxServer
from sandbox.shapes import workload_of

ALERTS = Path(__file__).resolve().parent.parent / "fixtures" / "alerts"


def point_flows_at(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in flow_env(sandbox.url, sandbox.cluster).items():
        monkeypatch.setenv(key, value)


def alert_payload(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((ALERTS / f"{name}.json").read_text())
    return body


RULES = ALERTS / "rules"
PLACEHOLDER = re.compile(r"\{pod:([^/]+)/([^:]+):(\d+)\}")


def rule_payload(sandbox: SandboxServer, name: str) -> dict[str, Any]:
    """A real-format payload (`tests/fixtures/alerts/rules/`), its `{pod:NS/APP:I}` placeholders
    replaced by the names of the live pods (ReplicaSet hashes are not known in advance)."""

    def pod(match: re.Match[str]) -> str:
        found, _ = sandbox.cluster.store.list(POD, match[1])
        names = sorted(p["metadata"]["name"] for p in found if workload_of(p) == match[2])
        return names[int(match[3])]

    body: dict[str, Any] = json.loads(PLACEHOLDER.sub(pod, (RULES / f"{name}.json").read_text()))
    return body
