"""Serve the flows from one long-running process (no work pool needed): the lightest production
shape on one machine. Each run happens in a subprocess of this one.

    python -m deployments.serve          # health sweep every 5 minutes

Scenario deployments and the Alertmanager intake join this list as they are built.
"""

from __future__ import annotations

from prefect import serve

from flows.health_sweep import health_sweep

HEALTH_SWEEP_INTERVAL_SECONDS = 300


def main() -> None:
    serve(
        health_sweep.to_deployment(
            name="health-sweep",
            interval=HEALTH_SWEEP_INTERVAL_SECONDS,
            description="The runbook's common diagnostics, read-only, on a schedule.",
            tags=["read-only", "sweep"],
        ),
        # Restarting the serve process must not pause the schedules operators rely on.
        pause_on_shutdown=False,
    )


if __name__ == "__main__":
    main()
