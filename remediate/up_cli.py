"""`remediate up`: start the running system and serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True)


def up(
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            dir_okay=False,
            exists=True,
            help="A real cluster's kubeconfig; without it the sandbox stands in.",
        ),
    ] = None,
    prefect_port: Annotated[
        int, typer.Option("--prefect-port", min=0, max=65535, help="The UI and API; 0: free.")
    ] = 4200,
    intake_port: Annotated[
        int, typer.Option("--intake-port", min=0, max=65535, help="The webhook; 0: free.")
    ] = 9095,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample/--no-sample",
            help="On the sandbox, inject a sample incident and send its alert to the intake.",
        ),
    ] = True,
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring/--no-monitoring",
            help="On the sandbox, run Prometheus and two Alertmanagers (Debian's prometheus and "
            "prometheus-alertmanager) with infra/prometheus's rules, notifying the intake; "
            "skipped, and said, when they are not installed.",
        ),
    ] = True,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=1.0,
            help="The monitoring loop's rehearsal speed: every `for:`, range and interval of "
            "the rules and routes divided by this (60: `for: 15m` fires after 15 s).",
        ),
    ] = 60.0,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", file_okay=False, help="Prefect's home, logs, the token."),
    ] = Path("var"),
) -> None:
    """Start the running system on this machine: a Prefect server with its UI, the served
    deployments, the Alertmanager intake and (unless --kubeconfig) the sandbox with Prometheus
    and two Alertmanagers watching it. Prints `prefect-ui:`, `intake:`, `kubeconfig:`,
    `prometheus:` and `alertmanager:` when ready; Ctrl-C stops everything it started."""
    from remediate.processes import ProcessFailed
    from remediate.stack import StackOptions, start

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def say(text: str) -> None:
        print(text, flush=True)

    options = StackOptions(
        state_dir=state_dir,
        kubeconfig=kubeconfig,
        prefect_port=prefect_port,
        intake_port=intake_port,
        sample=sample,
        monitoring=monitoring,
        speed=speed,
    )
    with ExitStack() as exits:
        try:
            stack = start(options, say, exits)
        except (ProcessFailed, OSError) as exc:
            err.print(f"[red]remediate up failed: {exc}[/red]")
            raise typer.Exit(1) from exc
        say(f"prefect-ui: {stack.prefect_url}")
        say(f"intake: {stack.intake_url}")
        say(f"kubeconfig: {stack.kubeconfig}")
        if stack.prometheus_url:
            say(f"prometheus: {stack.prometheus_url}")
            for url in stack.alertmanager_urls:
                say(f"alertmanager: {url}")
        elif stack.monitoring_note:
            say(f"monitoring: {stack.monitoring_note}")
        say(
            f"intake token: {stack.token_source} (Alertmanager sends it as "
            "http_config.authorization credentials; set REMEDIATE_INTAKE_TOKEN to choose it)"
        )
        say(f"run the CLI against this stack: export PREFECT_API_URL={stack.api_url}")
        say(f"logs: {options.state_dir / 'stack' / 'logs'}; Ctrl-C stops everything")
        while not stop.wait(1.0):
            for child in stack.children:
                if not child.running:
                    err.print(f"[red]{child.name} exited:[/red]\n{child.tail()}")
                    stop.set()
        say("stopping")
    say("stopped")
