"""Which cluster the tasks talk to: one client per process and per access setting.

Tasks take plain names, not clients, so Prefect can render and record their parameters; they
reach the cluster through `cluster()`, a `ReadOnlyCluster`: a separate object with only the
reads, over the connection pool of `tasks.adapters.pool`, and JWKS through `http_endpoints()`,
likewise without the control plane's scale. The objects that can write are not reachable from
here: the gate gets them from `tasks.changes.writer`, and import-linter lets nothing else import
the pool or the Kubernetes implementation.
"""

from __future__ import annotations

import os
import threading

from tasks.adapters.cluster import ClusterReader, ReadOnlyCluster
from tasks.adapters.http_endpoints import HttpEndpoints, JwksAnswer
from tasks.adapters.pool import close_pooled, pooled_cluster, pooled_endpoints
from tasks.adapters.workers import CeleryWorkers, Workers
from tasks.settings import SECRETS_DIR_VARIABLE, CeleryBroker, KubeAccess, Settings

_lock = threading.Lock()
_workers: dict[str, CeleryWorkers] = {}
_settings: tuple[object, Settings] | None = None


def _settings_source() -> object:
    """What `Settings()` is read from: the REMEDIATE_* environment (pydantic-settings matches
    the prefix in any case) and, when a secrets folder is mounted, each file's name, mtime and
    size (a Secret's update swaps the files). Equal sources give equal settings."""
    environment = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("REMEDIATE_"))
    )
    folder = os.environ.get(SECRETS_DIR_VARIABLE, "")
    if not folder:
        return environment
    try:
        with os.scandir(folder) as entries:
            files = tuple(sorted((e.name, _stamp(e)) for e in entries))
    except OSError as exc:  # Settings() says what is wrong with the folder: never cached
        return (environment, object(), exc)
    return (environment, files)


def _stamp(entry: os.DirEntry[str]) -> tuple[int, int]:
    # stat() follows the links a mounted Secret's files are (..data/NAME): the value's mtime.
    try:
        stat = entry.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


def settings() -> Settings:
    """`Settings()`, read once per process while what it is read from stays the same: the
    hot path (every `cluster()` call, a dozen a triage run) no longer re-parses the environment
    and every nested model. A changed REMEDIATE_* variable or secrets file is seen at the next
    call. The object is shared: read it, never assign to it."""
    global _settings
    source = _settings_source()
    cached = _settings
    if cached is not None and cached[0] == source:
        return cached[1]
    fresh = Settings()
    _settings = (source, fresh)
    return fresh


def cluster(access: KubeAccess | None = None) -> ClusterReader:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), read-only: a view
    with the `ClusterReader` methods and no other, over the process's pooled connection."""
    return ReadOnlyCluster(pooled_cluster(access or settings().kube))


class JwksEndpoint:
    """The HTTP read the probes make, JWKS from where the flows run, over the process's pooled
    `HttpEndpoints`; the control plane's scale is not here (`tasks.changes.writer`)."""

    __slots__ = ("_reads",)

    def __init__(self, pooled: HttpEndpoints) -> None:
        self._reads = pooled

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def jwks(self, url: str) -> JwksAnswer:
        return self._reads.jwks(url)


def http_endpoints() -> JwksEndpoint:
    """JWKS over the process's one HTTP client, read-only."""
    return JwksEndpoint(pooled_endpoints(settings().kube.request_timeout_seconds))


def workers(broker: CeleryBroker | None = None) -> Workers:
    """Runbook C's Celery workers and their broker (default: REMEDIATE_CELERY__*), one client
    per broker URL and process."""
    broker = broker or settings().celery
    key = broker.broker_url.get_secret_value()
    with _lock:
        if key not in _workers:
            _workers[key] = CeleryWorkers(broker)
        return _workers[key]


def close_all() -> None:
    close_pooled()
    with _lock:
        for adapter in _workers.values():
            adapter.close()
        _workers.clear()
