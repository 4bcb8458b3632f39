"""Drive a running sandbox from another process: find it through its kubeconfig, inject an
incident over its control API. Kept apart from the CLI so tests and scripts can call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml


class SandboxControlError(RuntimeError):
    """A message for the operator: no sandbox, not a sandbox kubeconfig, or an unknown name."""

    def __init__(self, message: str, known: list[str] | None = None) -> None:
        super().__init__(message)
        self.known = known or []


def server_url(kubeconfig: Path) -> str:
    """The API server of the kubeconfig's current context (the sandbox writes one context)."""
    if not kubeconfig.is_file():
        raise SandboxControlError(
            f"kubeconfig not found: {kubeconfig} (is `remediate sandbox up` running?)"
        )
    doc: dict[str, Any] = yaml.safe_load(kubeconfig.read_text()) or {}
    current = doc.get("current-context")
    contexts = {c["name"]: c.get("context", {}) for c in doc.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster", {}) for c in doc.get("clusters") or []}
    context = contexts.get(current or "")
    if context is None or context.get("cluster") not in clusters:
        raise SandboxControlError(f"{kubeconfig} has no usable current context")
    return str(clusters[context["cluster"]]["server"]).rstrip("/")


def inject(kubeconfig: Path, name: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """POST /sandbox/v1/incidents/{name} to the sandbox the kubeconfig points at."""
    url = server_url(kubeconfig)
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            response = http.post(f"{url}/sandbox/v1/incidents/{name}")
    except httpx.TransportError as exc:
        raise SandboxControlError(
            f"no sandbox answers at {url} ({exc.__class__.__name__}); "
            "start one with `remediate sandbox up`"
        ) from exc
    body: dict[str, Any] = {}
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
    if response.status_code == 400 and "known" in body:
        raise SandboxControlError(f"unknown incident {name!r}", known=list(body["known"]))
    if response.status_code != 201:
        raise SandboxControlError(
            f"{url} is not a sandbox that accepts incidents (HTTP {response.status_code}: "
            f"{body.get('error') or response.text[:200]})"
        )
    return body
