"""Evidence on the Prefect run page: markdown and table artifacts, one helper per kind.

Artifact keys may hold only lowercase letters, digits and dashes (Prefect rejects anything
else), so every key goes through `artifact_key`; a keyed artifact is versioned, so the same
key across runs shows its history in the UI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.adapters.cluster import Pod
from tasks.models.diagnosis import Diagnosis, TriageDecision
from tasks.models.outcome import Outcome, changes_table


def artifact_key(*parts: str) -> str:
    """("pod-crash", "alphaswarm/alphaswarm-core") -> pod-crash-alphaswarm-alphaswarm-core."""
    text = "-".join(parts).lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text)).strip("-") or "artifact"


def publish_outcome(outcome: Outcome, key: str) -> None:
    create_markdown_artifact(
        outcome.to_markdown(),
        key=artifact_key(key),
        description="What was decided, changed, verified",
    )


def publish_diagnosis(diagnosis: Diagnosis, key: str) -> None:
    create_markdown_artifact(
        "# Diagnosis\n\n" + diagnosis.to_markdown(),
        key=artifact_key(key),
        description="What the diagnosis decided and why",
    )


def publish_triage(decision: TriageDecision, key: str) -> None:
    create_markdown_artifact(
        "# Triage\n\n" + decision.to_markdown(), key=artifact_key(key), description="Branch chosen"
    )


def publish_changes(outcome: Outcome, key: str) -> None:
    if not outcome.changes:
        return
    create_markdown_artifact(
        "# Changes\n\n" + "\n".join(changes_table(outcome.changes)) + "\n",
        key=artifact_key(key),
        description="Plans (dry run) or applied changes, with what a revert would write",
    )


def publish_pods(pods: Sequence[Pod], key: str, description: str) -> None:
    """`kubectl get pods -o wide` as a table artifact."""
    rows = [
        {
            "name": p.name,
            "ready": p.ready,
            "status": p.status,
            "restarts": p.restarts,
            "node": p.node or "",
            "ip": p.ip or "",
        }
        for p in pods
    ]
    create_table_artifact(rows, key=artifact_key(key), description=description)


def publish_evidence(title: str, lines: Sequence[str], key: str) -> None:
    """Free-form evidence (describe output, log tails) as a markdown artifact."""
    body = "\n".join(f"    {line}" for line in lines) or "    (nothing)"
    create_markdown_artifact(f"# {title}\n\n{body}\n", key=artifact_key(key), description=title)
