"""Why an adapter call failed, sorted by what the caller should do about it.

```
AdapterError            the call did not do its job; carries the HTTP status and server message
├── TransientError      worth retrying later: timeouts, connection errors, 5xx, 409, 429
└── PermanentError      retrying will not help: 400, 401, 403, unexpected 404, 422, a guard
```

Adapters raise these and never retry; Prefect task options decide how often to try again, in
one layer only. The module is client-free so every adapter (cluster, Celery, HTTP) can share it.
"""

from __future__ import annotations

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


class AdapterError(Exception):
    """An adapter call failed. `status` is the HTTP status when there was a response."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.operation = operation

    def __str__(self) -> str:
        parts = [self.operation] if self.operation else []
        if self.status is not None:
            parts.append(f"HTTP {self.status}" + (f" {self.reason}" if self.reason else ""))
        parts.append(self.message)
        return ": ".join(parts)


class TransientError(AdapterError):
    """The same call may succeed later."""


class PermanentError(AdapterError):
    """The same call will fail again until something else changes."""


def is_transient_status(status: int | None) -> bool:
    """No status means no response (timeout, refused connection): transient."""
    if status is None or status == 0:
        return True
    return status >= 500 or status in TRANSIENT_STATUSES


def error_for_status(
    status: int | None, message: str, *, reason: str | None = None, operation: str | None = None
) -> AdapterError:
    kind = TransientError if is_transient_status(status) else PermanentError
    return kind(message, status=status or None, reason=reason, operation=operation)
