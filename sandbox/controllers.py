"""Placeholder: replaced by the controllers that make the sandbox move."""

from sandbox.cluster import SandboxCluster


class Controllers:
    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster

    def start(self, interval: float) -> None:
        pass

    def stop(self) -> None:
        pass

    def step(self) -> None:
        pass
