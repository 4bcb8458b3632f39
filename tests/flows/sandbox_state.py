"""What the scenario flow tests read straight from the sandbox's store (never through the flows'
own adapters, so a wrong adapter cannot make a test pass), and the checks they share."""

from __future__ import annotations

import ast
import inspect
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from sandbox.journal import Fault, Faults
from sandbox.resources import ENDPOINTS, POD
from sandbox.server import SandboxServer
from sandbox.shapes import is_ready, workload_of

Obj = dict[str, Any]


def pods(sandbox: SandboxServer, namespace: str, selector: str) -> list[Obj]:
    found, _ = sandbox.cluster.store.list(POD, namespace, labels=selector)
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def crash_looping(sandbox: SandboxServer, namespace: str, selector: str) -> list[str]:
    """The pods whose software crashes, as the sandbox's behaviour model says: a crash-looping
    pod is Running between crashes, so its state at one instant is not the truth."""
    behaviour = sandbox.cluster.behaviour
    return sorted(
        p["metadata"]["name"]
        for p in pods(sandbox, namespace, selector)
        if behaviour.for_pod(p["metadata"]["uid"], namespace, workload_of(p)).crash_looping
    )


def ready_count(sandbox: SandboxServer, namespace: str, selector: str) -> int:
    return sum(1 for p in pods(sandbox, namespace, selector) if is_ready(p))


def ready_endpoints(sandbox: SandboxServer, namespace: str, service: str) -> int:
    found = sandbox.cluster.store.get(ENDPOINTS, namespace, service)
    if found is None:
        return 0
    return sum(len(s.get("addresses") or []) for s in found.get("subsets") or [])


def settle(sandbox: SandboxServer, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Step the controllers until `done()` (the background ticker runs as well)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the sandbox did not reach the expected state"
        sandbox.controllers.step()


def fail_one_request_in_ten(sandbox: SandboxServer, seed: int) -> Fault:
    """10% of every sandbox request answers 503, reproducibly (a seeded fault RNG)."""
    sandbox.cluster.faults = Faults(seed)
    return sandbox.cluster.faults.add(Fault(path=".", error_rate=0.1, status=503))


def fail_or_slow_one_request_in_ten(sandbox: SandboxServer, seed: int) -> None:
    """One request in ten goes wrong, reproducibly: half of those answer 503, the other half
    answer late (0.3 s, well inside the client's timeout, so the write still lands)."""
    sandbox.cluster.faults = Faults(seed)
    sandbox.cluster.faults.add(Fault(path=".", error_rate=0.05, status=503))
    sandbox.cluster.faults.add(Fault(path=".", latency=0.3, latency_rate=0.05))


def assert_flow_never_sleeps(module: ModuleType) -> None:
    """Waiting is the verify tasks' retries' job: a flow module calls no sleep of its own."""
    tree = ast.parse(inspect.getsource(module))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    assert "sleep" not in names | attrs, f"{module.__name__} sleeps"
    assert "time" not in imported and "asyncio" not in imported, f"{module.__name__} waits"
