"""Point the flows' settings at a sandbox's JWKS and control plane, as `sandbox up` prints them.

The shared `sandbox` fixture sets only the kubeconfig; scenario D and triage also reach the JWKS
URL from this process, which must be the sandbox's, never the real Auth0 tenant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.flow_env import flow_env
from sandbox.server import SandboxServer

ALERTS = Path(__file__).resolve().parent.parent / "fixtures" / "alerts"


def point_flows_at(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in flow_env(sandbox.url, sandbox.cluster).items():
        monkeypatch.setenv(key, value)


def alert_payload(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((ALERTS / f"{name}.json").read_text())
    return body
