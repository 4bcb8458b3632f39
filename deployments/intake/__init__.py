"""The Alertmanager intake service (`python -m deployments.intake`)."""
