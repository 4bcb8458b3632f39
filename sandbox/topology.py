"""Placeholder: replaced by the seeded AlphaSwarm topology."""

from sandbox.cluster import SandboxCluster


def seed(cluster: SandboxCluster) -> None:
    """Fill the cluster with the AlphaSwarm topology."""
