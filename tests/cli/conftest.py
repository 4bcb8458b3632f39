"""The CLI's engine tests reuse the flows' harness, sandbox and incident-store fixtures."""

from tests.flows.conftest import prefect_harness, sandbox, store

__all__ = ["prefect_harness", "sandbox", "store"]
