"""AlphaSwarm's Celery workers as the runbook sees them: queue depth, active tasks, who is online.

Scenario C asks two questions before and after scaling `alphaswarm-worker`: how deep is the
queue (the alarm's own measure: Redis LLEN on the kombu queue key, priority lanes included) and
what are the workers doing (`celery inspect active`). `CeleryWorkers` answers them from the
broker in `tasks.settings.CeleryBroker` and returns frozen pydantic facts; Celery and Redis
objects stay in this module.

Failures are sorted like every adapter's: an unreachable broker, a refused connection or a
timeout is a `TransientError`, bad credentials, a bad URL or a wrong key type a
`PermanentError`. Nothing here retries (kombu's own connection retries are switched off), and
the broker URL, a secret, never appears in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import redis
import redis.exceptions
from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from tasks.adapters.cluster import Fact
from tasks.adapters.errors import AdapterError, PermanentError, TransientError
from tasks.settings import CeleryBroker

# kombu's Redis transport keeps each priority lane of a queue in its own list.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)  # lane 0 is the bare queue name
ARGS_SUMMARY_LIMIT = 120
_AUTH_MARKERS = ("NOAUTH", "WRONGPASS", "invalid password", "invalid username", "NOPERM")


class ActiveTask(Fact):
    """One task a worker is executing right now."""

    id: str
    name: str
    args: str = ""  # positional and keyword arguments, shortened for a report
    time_start: datetime | None = None
    worker_pid: int | None = None


class WorkerActivity(Fact):
    hostname: str  # celery@<pod>
    tasks: tuple[ActiveTask, ...] = ()


class ActiveTasks(Fact):
    """The replies to `inspect active`; a worker that did not reply in time is absent."""

    workers: tuple[WorkerActivity, ...] = ()

    @property
    def busy_workers(self) -> tuple[str, ...]:
        return tuple(w.hostname for w in self.workers if w.tasks)

    @property
    def total(self) -> int:
        return sum(len(w.tasks) for w in self.workers)


class WorkersOnline(Fact):
    """Hostnames of the workers that answered a ping in time."""

    hostnames: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.hostnames)


class Workers(Protocol):
    def queue_depth(self, queue: str) -> int:
        """Messages waiting in `queue` (not yet reserved by a worker)."""
        ...

    def active_tasks(self, timeout: float = 1.0) -> ActiveTasks:
        """What each worker that replies within `timeout` seconds is executing."""
        ...

    def workers_online(self, timeout: float = 1.0) -> WorkersOnline:
        """The workers that answer a ping within `timeout` seconds."""
        ...


class CeleryWorkers:
    """`Workers` through the broker: Redis for queue depth, Celery remote control for the rest.

    Holds connections; use as a context manager or call `close()`.
    """

    def __init__(self, broker: CeleryBroker, *, socket_timeout: float = 5.0) -> None:
        self._url = broker.broker_url.get_secret_value()
        self._socket_timeout = socket_timeout
        self._redis: redis.Redis | None = None
        self._app: Any = None  # celery.Celery: untyped

    def queue_depth(self, queue: str) -> int:
        keys = [queue, *(f"{queue}{PRIORITY_SEPARATOR}{p}" for p in PRIORITY_STEPS)]
        with self._errors("queue_depth"):
            pipe = self._client().pipeline(transaction=False)
            for key in keys:
                pipe.llen(key)
            sizes: list[Any] = pipe.execute()
        return sum(int(size) for size in sizes)

    def active_tasks(self, timeout: float = 1.0) -> ActiveTasks:
        with self._errors("active_tasks"):
            replies = self._celery().control.inspect(timeout=timeout).active() or {}
        return ActiveTasks(
            workers=tuple(
                WorkerActivity(hostname=host, tasks=tuple(_task(t) for t in tasks or ()))
                for host, tasks in sorted(replies.items())
            )
        )

    def workers_online(self, timeout: float = 1.0) -> WorkersOnline:
        with self._errors("workers_online"):
            replies = self._celery().control.ping(timeout=timeout) or []
        return WorkersOnline(hostnames=tuple(sorted(host for r in replies for host in r)))

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._app is not None:
            self._app.close()
            self._app = None

    def __enter__(self) -> CeleryWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients ---------------------------------------------------------------------------------
    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
            )
        return self._redis

    def _celery(self) -> Any:
        if self._app is None:
            app = Celery("remediate", broker=self._url, set_as_current=False)
            app.conf.update(
                broker_connection_retry_on_startup=True,
                broker_connection_timeout=self._socket_timeout,
                # No retry loop hidden in kombu: the caller's task options decide.
                broker_transport_options={
                    "max_retries": 0,
                    "socket_timeout": self._socket_timeout,
                    "socket_connect_timeout": self._socket_timeout,
                },
            )
            self._app = app
        return self._app

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except AdapterError:
            raise
        except Exception as exc:
            raise _classify(exc, operation, self._url) from None


def _classify(exc: Exception, operation: str, url: str) -> AdapterError:
    message = _scrub(f"{type(exc).__name__}: {exc}", url)
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError) or any(
        marker in str(exc) for marker in _AUTH_MARKERS
    ):
        return PermanentError(message, operation=operation)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OperationalError | OSError):
        return TransientError(message, operation=operation)
    if isinstance(exc, ValueError):  # a malformed URL; its text may quote the URL
        return PermanentError(f"invalid broker URL ({type(exc).__name__})", operation=operation)
    if isinstance(exc, redis.RedisError | KombuError):
        return PermanentError(message, operation=operation)
    return PermanentError(message, operation=operation)


def _scrub(message: str, url: str) -> str:
    """Drop the broker URL and its password from a message, should a library have quoted them."""
    message = message.replace(url, "<broker>")
    password = re.match(r"^[a-z]+://[^:/@]*:([^@]+)@", url)
    if password:
        message = message.replace(password.group(1), "***")
    return message


def _task(info: dict[str, Any]) -> ActiveTask:
    started = info.get("time_start")
    pid = info.get("worker_pid")
    return ActiveTask(
        id=str(info.get("id", "")),
        name=str(info.get("name") or info.get("type") or ""),
        args=_summary(info.get("args"), info.get("kwargs")),
        time_start=datetime.fromtimestamp(started, UTC)
        if isinstance(started, int | float)
        else None,
        worker_pid=pid if isinstance(pid, int) else None,
    )


def _summary(args: Any, kwargs: Any) -> str:
    """`4028, strategy='momentum-v3'`; older workers send the repr strings themselves."""
    parts: list[str] = []
    if isinstance(args, list | tuple):
        parts += [repr(a) for a in args]
    elif args:
        parts.append(str(args))
    if isinstance(kwargs, dict):
        parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    elif kwargs:
        parts.append(str(kwargs))
    text = ", ".join(parts)
    return text if len(text) <= ARGS_SUMMARY_LIMIT else text[: ARGS_SUMMARY_LIMIT - 1] + "…"
