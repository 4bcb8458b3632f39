"""The CLI's engine tests reuse the flows' harness, sandbox and incident-store fixtures."""

from tests.flows.conftest import conditioned, prefect_harness, sandbox, store

__all__ = ["conditioned", "prefect_harness", "sandbox", "store"]
