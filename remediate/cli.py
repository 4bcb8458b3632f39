"""The `remediate` command line: run the sandbox, look at a cluster the way the runbook does."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help=(
        "AlphaSwarm incident remediation: the operations runbook as Prefect flows.\n\n"
        "Start a rehearsal cluster with `remediate sandbox up`, then point kubectl or any "
        "`remediate` command at the kubeconfig it prints."
    ),
    no_args_is_help=True,
    add_completion=False,
)
sandbox_app = typer.Typer(
    help="A simulated AlphaSwarm cluster that kubectl and the flows talk to over HTTP.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")

console = Console()
err = Console(stderr=True)

DEFAULT_SANDBOX_KUBECONFIG = Path("var/sandbox/kubeconfig.yaml")

KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="kubeconfig of the cluster to talk to (default: REMEDIATE_KUBE__KUBECONFIG, "
        "then $KUBECONFIG, then ~/.kube/config).",
        envvar="REMEDIATE_KUBE__KUBECONFIG",
        dir_okay=False,
    ),
]


@sandbox_app.command("up")
def sandbox_up(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 0,
    kubeconfig: Annotated[
        Path,
        typer.Option("--kubeconfig", dir_okay=False, help="Where to write the sandbox kubeconfig."),
    ] = DEFAULT_SANDBOX_KUBECONFIG,
    tick: Annotated[
        float, typer.Option("--tick", min=0.01, help="Seconds between controller steps.")
    ] = 0.5,
) -> None:
    """Run the sandbox in the foreground until Ctrl-C (SIGINT) or SIGTERM."""
    from sandbox.server import SandboxServer

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = SandboxServer(port=port, tick_seconds=tick).start()
    except OSError as exc:
        err.print(f"[red]cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}[/red]")
        raise typer.Exit(1) from exc
    try:
        path = server.write_kubeconfig(kubeconfig).resolve()
        print(f"kubeconfig: {path}", flush=True)
        print(
            f"The sandbox API is listening on {server.url}. Use it with:\n"
            f"  export KUBECONFIG={path}\n"
            "  kubectl get pods -n alphaswarm -o wide\n"
            f"  remediate status --kubeconfig {path}\n"
            "Stop it with Ctrl-C.",
            flush=True,
        )
        stop.wait()
    finally:
        server.stop()
        print("sandbox stopped", flush=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
