"""The files under infra/, sorted by what can check them.

- Kubernetes manifests of kinds the sandbox serves: `kubectl apply --dry-run=server`
  (tests/infra/test_manifests.py).
- Manifests of prometheus-operator's CRDs (PrometheusRule, AlertmanagerConfig): the sandbox
  serves no CRDs, so tests/unit/test_alert_rules.py checks their shape instead.
- Everything else (Helm values, the alertmanager.yaml fragment, the work pool's JSON): no
  `apiVersion`/`kind`, checked by their own tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.resources import KINDS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CRD_GROUPS = ("monitoring.coreos.com",)
SERVED = {(k.api_version, k.kind) for k in KINDS}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def is_manifest(path: Path) -> bool:
    docs = documents(path)
    return bool(docs) and all(
        isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs
    )


def manifests() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*.y*ml") if is_manifest(p))


def is_crd(doc: dict[str, Any]) -> bool:
    return str(doc["apiVersion"]).split("/")[0] in CRD_GROUPS


def served_manifests() -> list[Path]:
    """The manifests whose every object is of a kind the sandbox serves."""
    return [
        p for p in manifests() if all((d["apiVersion"], d["kind"]) in SERVED for d in documents(p))
    ]


def crd_manifests() -> list[Path]:
    return [p for p in manifests() if all(is_crd(d) for d in documents(p))]
