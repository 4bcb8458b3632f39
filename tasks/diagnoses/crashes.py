"""When a pod is crash-looping: judged over a window, the way monitoring judges it.

A real crash-looping container is not in CrashLoopBackOff at every instant: the kubelet restarts
it after the back-off, it runs (Running, maybe even Ready) until it dies again, shows Error or
OOMKilled, then waits once more. kube-prometheus's `KubePodCrashLooping` fires on a back-off
seen at any point of the last minutes, so a probe that looks only at the current waiting reason
misses the pod the alert is about about as often as it catches it. Here a pod is crash-looping
when it is in back-off or has just died now, or when it has restarted repeatedly and its last
death is recent. "Stopped crashing" after a fix is the other question: no death since the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.adapters.cluster import PodRow

# kube-prometheus's KubePodCrashLooping fires on a back-off seen in the last 5 minutes (and the
# kubelet backs off after the first failed run); a pod restarted after a failure within the last
# ten minutes is looping, whatever it shows this instant.
CRASH_WINDOW = timedelta(minutes=10)
CRASH_MIN_RESTARTS = 1
# A pod running since its last crash for twice as long as that last run lasted, and at least
# this long, has recovered (after a datastore came back, say): it is not between two crashes.
RECOVERED_AFTER = timedelta(seconds=60)
BACK_OFF_REASONS = frozenset({"CrashLoopBackOff"})


def last_crash(pod: PodRow) -> datetime | None:
    """When a container of the pod last died with an error (its current or last termination;
    a clean exit 0 is not a crash)."""
    return pod.last_crash_at


def crashing_now(pod: PodRow) -> bool:
    """In back-off, or a container has just died with an error (kubectl: Error, OOMKilled)."""
    if pod.deleting:
        return False
    return (
        pod.waiting_reason in BACK_OFF_REASONS
        or pod.status in BACK_OFF_REASONS
        or pod.container_failing
    )


def is_crash_looping(pod: PodRow, now: datetime | None = None) -> bool:
    """Crashing now, or restarted after an error that happened within CRASH_WINDOW of `now`
    (a pod Running between two crashes is still crash-looping)."""
    if pod.deleting:
        return False
    if crashing_now(pod):
        return True
    died = last_crash(pod)
    if died is None or max(pod.restarts, pod.max_restarts) < CRASH_MIN_RESTARTS:
        return False
    now = now or datetime.now(UTC)
    return died >= now - CRASH_WINDOW and not _recovered(pod, now)


def _recovered(pod: PodRow, now: datetime) -> bool:
    """Running since its last crash for longer than a crash-looping run lasts."""
    since = pod.running_since
    if since is None:
        return False
    lasted = timedelta(seconds=pod.last_run_seconds or 0)
    return now - since >= max(2 * lasted, RECOVERED_AFTER)


def crashed_since(pod: PodRow, since: datetime) -> bool:
    """The pod is crashing now or died after `since` (the fix): it did not stop crashing."""
    if pod.deleting:
        return False
    died = last_crash(pod)
    return crashing_now(pod) or (died is not None and died > since)


def serving(pod: PodRow, now: datetime | None = None) -> bool:
    """Ready, not on its way out, and not crash-looping: a pod without a readiness probe is
    Ready for the moments it runs between two crashes, which is not up."""
    return pod.is_ready and not pod.deleting and not is_crash_looping(pod, now)
