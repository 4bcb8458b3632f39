"""What a diagnosis decided and why: the shared result of every `diagnose_*` function.

A Diagnosis names the runbook scenario, one action, the parameters of that action, and the
evidence behind it as plain sentences, so a flow can publish it verbatim as an artifact and an
operator can check the reasoning without re-running anything.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Scenario(StrEnum):
    """The runbook's triage branches."""

    POD_CRASH = "A"
    HPA_THRASH = "B"
    QUEUE_BACKLOG = "C"
    JWKS_OUTAGE = "D"
    INGRESS_503 = "E"
    STATEFUL_FAILOVER = "F"

    @property
    def runbook_title(self) -> str:
        return _TITLES[self]

    @property
    def is_platform(self) -> bool:
        return self in (Scenario.JWKS_OUTAGE, Scenario.INGRESS_503, Scenario.STATEFUL_FAILOVER)


_TITLES = {
    Scenario.POD_CRASH: "single pod crashes",
    Scenario.HPA_THRASH: "HPA thrashing",
    Scenario.QUEUE_BACKLOG: "Celery queue depth alarm",
    Scenario.JWKS_OUTAGE: "Auth0 JWKS returns 503",
    Scenario.INGRESS_503: "Ingress returns 503",
    Scenario.STATEFUL_FAILOVER: "stateful service failover",
}


class Action(StrEnum):
    NONE = "none"  # healthy, or already mitigated
    RESTART_DEPLOYMENT = "restart-deployment"
    WIDEN_HPA_WINDOW = "widen-hpa-window"
    SCALE_WORKERS = "scale-workers"
    SET_AUTH_PERMISSIVE = "set-auth-permissive"
    RESTORE_AUTH_ENFORCE = "restore-auth-enforce"  # undo the permissive bypass
    DELETE_PODS = "delete-pods"
    REROUTE = "reroute"  # another runbook scenario fits the evidence better
    ESCALATE = "escalate"  # a human must decide; the evidence says why


class Diagnosis(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: Scenario | None
    action: Action
    summary: str  # what it decided, one sentence
    evidence: tuple[str, ...] = ()  # why, one fact per line
    # The action's target and parameters (only those the action needs are set).
    namespace: str | None = None
    name: str | None = None  # deployment, HPA or pod
    selector: str | None = None
    replicas: int | None = None
    window_seconds: int | None = None
    variable: str | None = None
    value: str | None = None
    # Further objects the same action applies to, as "namespace/name" (E: every backend whose
    # readiness fails, not only the first).
    more_targets: tuple[str, ...] = ()

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """(namespace, name) of every object the action applies to, the first one first."""
        first: tuple[tuple[str, str], ...] = (
            ((self.namespace or "", self.name),) if self.name else ()
        )
        rest = tuple((t.partition("/")[0], t.partition("/")[2]) for t in self.more_targets)
        return (*first, *rest)

    @property
    def needs_action(self) -> bool:
        return self.action not in (Action.NONE, Action.ESCALATE, Action.REROUTE)

    @property
    def escalate(self) -> bool:
        return self.action is Action.ESCALATE

    def to_markdown(self) -> str:
        where = f" `{self.namespace}/{self.name}`" if self.name else ""
        scenario = self.scenario
        branch = f"{scenario.value} — {scenario.runbook_title}" if scenario else "none"
        lines = [
            f"**Scenario:** {branch}",
            f"**Decision:** `{self.action}`{where} — {self.summary}",
        ]
        if self.evidence:
            lines += ["", "**Evidence:**", *[f"- {e}" for e in self.evidence]]
        return "\n".join(lines) + "\n"


class TriageDecision(BaseModel):
    """Which branch of the triage tree an incident is, or why no branch fits."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario | None  # None: nothing to do, or unclear (then `escalate`)
    reason: str
    evidence: tuple[str, ...] = ()
    escalate: bool = False
    namespace: str | None = None
    target: str | None = None  # the deployment/pod the scenario flow should act on
    hpa: str | None = None  # B: the HPA in front of the target, when it has one
    queue: str | None = None  # C: the queue found deep
    # B's other road: several pods of `target` crash-loop while the HPA is calm.
    several_crashing: bool = False
    # Probes that could not tell (what could not be read, and why): named, never a branch.
    inconclusive: tuple[str, ...] = ()

    def to_markdown(self) -> str:
        branch = (
            f"{self.scenario.value} — {self.scenario.runbook_title}" if self.scenario else "none"
        )
        lines = [f"**Triage:** {branch}{' (escalated)' if self.escalate else ''}", "", self.reason]
        if self.evidence:
            lines += ["", "**Evidence:**", *[f"- {e}" for e in self.evidence]]
        if self.inconclusive:
            lines += ["", "**Could not tell:**", *[f"- {e}" for e in self.inconclusive]]
        return "\n".join(lines) + "\n"
