"""Which pod kubectl picks for `logs deploy/X` and `exec deploy/X`.

`kubectl logs` sorts with `podutils.ByLogging`; `kubectl exec` (attachablePodForObject) sorts
with `sort.Reverse(podutils.ActivePods)`. Both live in k8s.io/kubectl/pkg/util/podutils.
They differ in one place: logs prefers the pod with MORE restarts (the interesting one), exec
prefers FEWER restarts (the healthy one). Phases outside the table rank like Running, because
Go's map lookup of a missing key yields 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cmp_to_key
from typing import Any

from tasks.adapters.cluster import Pod

_LOGGING_PHASE_RANK = {"Running": 0, "Unknown": 1, "Pending": 2}
_ACTIVE_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """podutils.afterOrZero: a missing time sorts as if it were after everything."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _by_logging_less(a: Pod, b: Pod) -> bool:
    if a.node != b.node and (not a.node or not b.node):
        return bool(a.node)
    rank_a, rank_b = _LOGGING_PHASE_RANK.get(a.phase, 0), _LOGGING_PHASE_RANK.get(b.phase, 0)
    if rank_a != rank_b:
        return rank_a < rank_b
    if a.is_ready != b.is_ready:
        return a.is_ready
    if a.is_ready and b.is_ready and a.ready_since != b.ready_since:
        return _after_or_zero(b.ready_since, a.ready_since)
    if a.max_restarts != b.max_restarts:
        return a.max_restarts > b.max_restarts
    if a.created_at != b.created_at:
        return _after_or_zero(b.created_at, a.created_at)
    return False


def _active_less(a: Pod, b: Pod) -> bool:
    """podutils.ActivePods.Less: the pod a controller would delete first sorts first."""
    if a.node != b.node and (not a.node or not b.node):
        return not a.node
    rank_a, rank_b = _ACTIVE_PHASE_RANK.get(a.phase, 0), _ACTIVE_PHASE_RANK.get(b.phase, 0)
    if rank_a != rank_b:
        return rank_a < rank_b
    if a.is_ready != b.is_ready:
        return not a.is_ready
    if a.is_ready and b.is_ready and a.ready_since != b.ready_since:
        return _after_or_zero(a.ready_since, b.ready_since)
    if a.max_restarts != b.max_restarts:
        return a.max_restarts > b.max_restarts
    if a.created_at != b.created_at:
        return _after_or_zero(a.created_at, b.created_at)
    return False


def _key(less: Callable[[Pod, Pod], bool]) -> Callable[[Pod], Any]:
    return cmp_to_key(lambda a, b: -1 if less(a, b) else (1 if less(b, a) else 0))


def _reverse(less: Callable[[Pod, Pod], bool]) -> Callable[[Pod, Pod], bool]:
    return lambda a, b: less(b, a)


def sort_for_logs(pods: Sequence[Pod]) -> list[Pod]:
    """Best first, as `kubectl logs deploy/X` orders them (ByLogging)."""
    return sorted(pods, key=_key(_by_logging_less))


def sort_for_exec(pods: Sequence[Pod]) -> list[Pod]:
    """Best first, as `kubectl exec deploy/X` orders them (ActivePods, reversed)."""
    return sorted(pods, key=_key(_reverse(_active_less)))


def pick_for_logs(pods: Sequence[Pod]) -> Pod | None:
    ordered = sort_for_logs(pods)
    return ordered[0] if ordered else None


def pick_for_exec(pods: Sequence[Pod]) -> Pod | None:
    ordered = sort_for_exec(pods)
    return ordered[0] if ordered else None
