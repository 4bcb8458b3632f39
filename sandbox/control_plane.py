"""The AlphaSwarm control plane's own state: its bearer token, its audit table and an injected
rate limit. `sandbox.api_control_plane` serves it under `/manage`; the cluster holds it, so this
module knows nothing of the cluster (which would tie the two into a circle).

The queue-backlog incident can make it answer 429 for a number of calls, since a real rate-limited
control plane is exactly when a flow must fall back or retry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

DEFAULT_TOKEN = "sandbox-cp-token"
APP_NAMESPACE = "alphaswarm"
CP_NAMESPACE, CP_APP = "alphaswarm-admin", "alphaswarm-cp"
MAX_REPLICAS = 50
# Calls the queue-backlog incident rate-limits unless the cluster says otherwise.
BACKLOG_RATE_LIMITED_CALLS = 2


@dataclass(frozen=True)
class AuditRow:
    ts: str
    event: str
    actor: str
    action: str
    target: str
    namespace: str
    replicas_before: int
    replicas_after: int
    request_id: str
    status: str = "succeeded"


@dataclass
class ControlPlane:
    """The control plane's own state: its token, its audit table, and an injected rate limit."""

    token: str = DEFAULT_TOKEN
    # The next `rate_limited_calls` authorised calls answer 429 with Retry-After.
    rate_limited_calls: int = 0
    # How many calls the queue-backlog incident rate-limits (set before injecting to change it).
    backlog_rate_limited_calls: int = BACKLOG_RATE_LIMITED_CALLS
    retry_after_seconds: int = 1
    rows: list[AuditRow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rate_limit(self, calls: int, retry_after_seconds: int = 1) -> None:
        with self._lock:
            self.rate_limited_calls = calls
            self.retry_after_seconds = retry_after_seconds

    def take_rate_limit(self) -> bool:
        """True when this call is one of the rate-limited ones (and uses it up)."""
        with self._lock:
            if self.rate_limited_calls <= 0:
                return False
            self.rate_limited_calls -= 1
            return True

    def record(self, row: AuditRow) -> None:
        with self._lock:
            self.rows.append(row)

    def audit(self, event: str | None = None, target: str | None = None) -> list[AuditRow]:
        with self._lock:
            rows = list(self.rows)
        return [
            r
            for r in rows
            if (event is None or r.event == event) and (target is None or r.target == target)
        ]
