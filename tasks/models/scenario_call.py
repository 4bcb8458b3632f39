"""What triage hands a scenario flow: its decision (the target) and the run's switches.

Each scenario's Params is built from this by one constructor (`*Params.from_call`), so triage
has no per-scenario glue and a scenario started from the UI takes the same Params directly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tasks.models.diagnosis import TriageDecision


class VerifyPolicy(BaseModel):
    """How patiently the scenario flow proves its fix; unset fields keep that flow's defaults.

    Production keeps the defaults (B waits a minute without a rescale before calling the HPA
    stable). A rehearsal on the sandbox, whose controllers tick many times a second, shortens
    them so a run takes seconds; the checks themselves stay the same."""

    model_config = ConfigDict(frozen=True)

    attempts: int | None = Field(default=None, ge=1, description="polls of each verify")
    delay_seconds: float | None = Field(default=None, ge=0, description="pause between polls")
    quiet_seconds: float | None = Field(
        default=None, gt=0, description="B: how long without a rescale counts as stable"
    )
    hold_seconds: float | None = Field(
        default=None,
        ge=0,
        description="how long a verified fix must hold before the incident resolves "
        "(default REMEDIATE_INCIDENTS__HOLD_SECONDS)",
    )

    def overrides(self, *, delay: bool = True, quiet: bool = False) -> dict[str, float | int]:
        """The set fields, named as the scenario Params name them (for those that have them)."""
        found: dict[str, float | int] = {}
        if self.attempts is not None:
            found["verify_attempts"] = self.attempts
        if delay and self.delay_seconds is not None:
            found["verify_delay_seconds"] = self.delay_seconds
        if quiet and self.quiet_seconds is not None:
            found["quiet_seconds"] = self.quiet_seconds
        return found


class ScenarioCall(BaseModel):
    """What a scenario flow is started with: the triage decision (its target) and the run's
    switches. One type for every scenario, so adding a scenario is one line in triage."""

    model_config = ConfigDict(frozen=True)

    decision: TriageDecision
    dry_run: bool
    approve_permissive: bool = False
    approve_postgres_delete: bool = False
    approved_by: str = ""
    approval_timeout_seconds: int = 3600
    verify: VerifyPolicy = VerifyPolicy()
    # A's restart cap: rollout restarts already applied to the target for this incident.
    restarts_already_made: int = 0

    def where(self, **defaults: str) -> dict[str, str]:
        """The decision's namespace and target under the Params' own field names, for those
        the decision sets (`where(namespace="namespace", deployment="target")`)."""
        d = self.decision
        found = {"namespace": d.namespace, "target": d.target, "hpa": d.hpa, "queue": d.queue}
        return {field: value for field, key in defaults.items() if (value := found.get(key))}
