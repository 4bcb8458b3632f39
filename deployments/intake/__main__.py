"""Run the intake: `python -m deployments.intake [--host H] [--port P]`.

It needs REMEDIATE_INTAKE_TOKEN (the bearer token Alertmanager sends), a migrated incident store
(REMEDIATE_STORE__URL) and, to start triage runs, the Prefect API (PREFECT_API_URL) serving the
triage deployment. Without Prefect it still accepts and stores alerts; their runs wait in the
outbox. Once listening it prints `intake: <webhook URL>`.
"""

from __future__ import annotations

import argparse
import logging
import socket

import uvicorn

from deployments.intake.app import WEBHOOK_PATH, create_app
from deployments.serve import require_migrated_store
from tasks.settings import Settings

DEFAULT_PORT = 9095


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.intake", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free one")
    args = parser.parse_args(argv)
    token = Settings().intake_token.get_secret_value()
    if not token:
        raise SystemExit("REMEDIATE_INTAKE_TOKEN is not set: the intake refuses to run open")
    require_migrated_store()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on the connections of such a
    # socket, and without it every answer (headers, then body) waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as exc:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    listener.listen(128)  # connections queue from here on, before uvicorn's loop is up
    host, port = listener.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(create_app(token), log_level="warning", access_log=False)
    )
    print(f"intake: http://{host}:{port}{WEBHOOK_PATH}", flush=True)
    server.run(sockets=[listener])


if __name__ == "__main__":
    main()
