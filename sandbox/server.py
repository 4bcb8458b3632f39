"""Run a sandbox cluster: the aiohttp API on a loopback port in a background thread, plus the
controllers' clock. Tests start one in-process on a free port; `remediate sandbox up` runs one in
the foreground. `conditions` seeds it as a real cluster of that kind (`sandbox.conditions`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from sandbox.api import build_app
from sandbox.cluster import SandboxCluster
from sandbox.conditions import seed_with
from sandbox.controllers import Controllers
from sandbox.rbac import KUBECONFIG_TOKEN, Authorizer

if TYPE_CHECKING:
    from sandbox.worker_pool import WorkerPool


class SandboxServer:
    """A seeded cluster served over HTTP. Use as a context manager or call start/stop."""

    def __init__(
        self,
        cluster: SandboxCluster | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_seconds: float = 0.2,
        seeded: bool = True,
        worker_pool: WorkerPool | None = None,
        conditions: Iterable[str] = (),
        rbac: Path | None = None,
        as_user: str | None = None,
        anonymous_as_user: bool = False,
    ) -> None:
        conditions = tuple(conditions)
        if (rbac is None) != (as_user is None):
            raise ValueError("rbac and as_user go together: the file's grants and whose they are")
        # With RBAC the kubeconfig's token is `as_user`, authorized against the file's Roles;
        # so are requests without credentials if anonymous_as_user (kubectl sends none over
        # plain HTTP), else they are the test harness's, unrestricted (`sandbox.rbac`).
        self.authorizer = (
            Authorizer.load(rbac, as_user, anonymous_as_user=anonymous_as_user)
            if rbac and as_user
            else None
        )
        if conditions and (cluster is not None or not seeded):
            raise ValueError("conditions shape the seeded topology: only for a cluster seeded here")
        self.cluster = cluster or SandboxCluster()
        if cluster is None and seeded:
            seed_with(self.cluster, conditions)
        self.controllers = Controllers(self.cluster)
        self.host, self.port, self.tick_seconds = host, port, tick_seconds
        # Real Celery workers for the alphaswarm-worker pods; started and stopped with the server.
        self.worker_pool = worker_pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def conditions(self) -> tuple[str, ...]:
        return self.cluster.conditions

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # surfaced to the caller of start()
                failure.append(exc)
                loop.run_until_complete(self._stop_site())
                loop.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._thread = threading.Thread(target=serve, name="sandbox-api", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        self.controllers.start(self.tick_seconds)
        if self.worker_pool is not None:
            self.worker_pool.start(self.cluster, self.tick_seconds)
        return self

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(
            build_app(self.cluster, self.authorizer), access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    async def _stop_site(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self.worker_pool is not None:
            self.worker_pool.stop()
        self.cluster.stop_background()
        self.controllers.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig whose current context talks to this sandbox, namespace alphaswarm."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": {"server": self.url}}],
            "users": [{"name": "sandbox", "user": {"token": KUBECONFIG_TOKEN}}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": "sandbox", "namespace": "alphaswarm"},
                }
            ],
            "current-context": "sandbox",
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return path
