"""The CLI's engine tests reuse the flows' sandbox and incident-store fixtures (the Prefect
harness is a plugin: tests/prefect_plugin.py)."""

from tests.flows.conftest import alertmanager_resolves, conditioned, sandbox, store

__all__ = ["alertmanager_resolves", "conditioned", "sandbox", "store"]
