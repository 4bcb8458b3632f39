"""Prefect's server, as `prefect server start` runs it in the foreground (the same app, its UI and
its services, under uvicorn), with one addition: a request Prefect answers 503 is retried inside
the server, within milliseconds, before the client sees it.

Why: on SQLite, `remediate up`'s default, a write transaction that read first fails at once with
SQLITE_BUSY when another writer committed in between (SQLite's busy timeout does not cover that
case). Prefect answers such errors 503 without a Retry-After header, and its client sleeps 2 s,
then 4 s, before trying again. Creating a subflow's parent task run meets it in most runs (the
server's task-run recorder, event persister and log writes commit all the time), and the
outbox's run creations in some: on the alert-to-mitigation bench, 20 such 503s over 6 incidents,
seconds each. Retried here after 20 ms, then 50, 100, 200, 400 ms, the same request almost always
succeeds; only when every retry fails does the client get the 503 and its own back-off.

Retrying is what Prefect's client would do with the same request: the failed transaction was
rolled back. Websockets (events, logs) and the lifespan pass through untouched.

Run: `python -m remediate.prefect_server --host 127.0.0.1 --port 4200`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

RETRY_DELAYS_SECONDS = (0.02, 0.05, 0.1, 0.2, 0.4)

# Under "prefect.server", whose handlers Prefect configures in the server process.
log = logging.getLogger("prefect.server.retry_unavailable")


class RetryUnavailable:
    """ASGI middleware: an HTTP request answered 503 is run again after each delay; the answer
    of the last attempt goes to the client whatever it is."""

    def __init__(self, app: ASGIApp, delays: tuple[float, ...] = RETRY_DELAYS_SECONDS) -> None:
        self.app, self.delays = app, delays

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away before its request was whole
            return
        for attempt, delay in enumerate(self.delays):
            # A copy each time: routing writes into the scope (a Mount's root_path, say).
            if await self._attempt(dict(scope), _replay(body, receive), send):
                if attempt:
                    log.info("%s %s succeeded on retry %d", scope["method"], scope["path"], attempt)
                return
            await asyncio.sleep(delay)
        log.warning(
            "%s %s answered 503 after %d retries", scope["method"], scope["path"], len(self.delays)
        )
        await self.app(dict(scope), _replay(body, receive), send)

    async def _attempt(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> bool:
        """Run the request once; False (and nothing sent) if the answer was 503."""
        unavailable = False

        async def hold_503(message: Message) -> None:
            nonlocal unavailable
            if message["type"] == "http.response.start" and message["status"] == 503:
                unavailable = True
            if not unavailable:
                await send(message)

        try:
            await self.app(scope, receive, hold_503)
        except Exception:
            # Starlette re-raises a handled exception after sending its 503 answer.
            if not unavailable:
                raise
        return not unavailable


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's body once, then the real channel (a disconnect while the answer streams)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def create_app() -> ASGIApp:
    from prefect.server.api.server import create_app as create_prefect_app

    return RetryUnavailable(create_prefect_app(final=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)

    import uvicorn
    from prefect.settings import (
        PREFECT_SERVER_API_KEEPALIVE_TIMEOUT,
        PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL,
        PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT,
        PREFECT_SERVER_LOGGING_LEVEL,
    )

    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        timeout_keep_alive=PREFECT_SERVER_API_KEEPALIVE_TIMEOUT.value(),
        ws_ping_interval=PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL.value(),
        ws_ping_timeout=PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT.value(),
        log_level=PREFECT_SERVER_LOGGING_LEVEL.value().lower(),
    )


if __name__ == "__main__":
    main()
