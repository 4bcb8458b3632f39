"""The CLI's engine tests reuse the flows' harness and sandbox fixtures."""

from tests.flows.conftest import prefect_harness, sandbox

__all__ = ["prefect_harness", "sandbox"]
