"""`kubectl rollout status` as a pure function of one Deployment observation.

Verbatim logic of DeploymentStatusViewer.Status (k8s.io/kubectl/pkg/polymorphichelpers/
rollout_status.go), with the error case (ProgressDeadlineExceeded) as a FAILED state instead of
an error, because a stuck rollout is a fact to diagnose, not a failure of this program.
"""

from __future__ import annotations

from tasks.adapters.cluster import Deployment, RolloutState, RolloutStatus

PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def rollout_status(deployment: Deployment) -> RolloutStatus:
    name = deployment.name

    def verdict(state: RolloutState, message: str) -> RolloutStatus:
        return RolloutStatus(
            deployment=name,
            state=state,
            message=message,
            generation=deployment.generation,
            observed_generation=deployment.observed_generation,
        )

    if deployment.generation > deployment.observed_generation:
        return verdict(RolloutState.PENDING, "Waiting for deployment spec update to be observed...")
    progressing = deployment.condition("Progressing")
    if progressing is not None and progressing.reason == PROGRESS_DEADLINE_EXCEEDED:
        return verdict(RolloutState.FAILED, f'deployment "{name}" exceeded its progress deadline')
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    updated, replicas = deployment.updated_replicas, deployment.replicas
    if replicas is not None and updated < replicas:
        return verdict(
            RolloutState.PROGRESSING,
            f"{waiting}{updated} out of {replicas} new replicas have been updated...",
        )
    if deployment.status_replicas > updated:
        old = deployment.status_replicas - updated
        return verdict(
            RolloutState.PROGRESSING, f"{waiting}{old} old replicas are pending termination..."
        )
    if deployment.available_replicas < updated:
        return verdict(
            RolloutState.PROGRESSING,
            f"{waiting}{deployment.available_replicas} of {updated} updated replicas are "
            "available...",
        )
    return verdict(RolloutState.COMPLETE, f'deployment "{name}" successfully rolled out')
