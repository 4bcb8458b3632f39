"""The `remediate` command line: run the sandbox, look at a cluster the way the runbook does."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from remediate.incidents_cli import db_app, incidents_app, require_store
from remediate.up_cli import up

if TYPE_CHECKING:
    from sandbox.redis_server import RedisServer
    from sandbox.worker_pool import WorkerPool

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
app.add_typer(incidents_app, name="incidents")
app.add_typer(db_app, name="db")
app.command("up")(up)

T = TypeVar("T")

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
    incident: Annotated[
        str | None,
        typer.Option("--incident", help="Inject this incident once the sandbox is up."),
    ] = None,
    celery: Annotated[
        bool,
        typer.Option(
            "--celery",
            help="Back alphaswarm-worker with real Celery workers on a private redis-server.",
        ),
    ] = False,
    condition: Annotated[
        list[str] | None,
        typer.Option(
            "--condition",
            help="Seed the sandbox as a real cluster with this condition (repeatable): "
            "managed-postgres, no-curl, running-between-crashes.",
        ),
    ] = None,
    rbac: Annotated[
        Path | None,
        typer.Option(
            "--rbac",
            exists=True,
            dir_okay=False,
            help="Authorize every API request against the Roles and bindings in this file "
            "(with --as), answering 403 Forbidden as a cluster would.",
        ),
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="The user the kubeconfig (and kubectl) authenticates as under --rbac, e.g. "
            "system:serviceaccount:alphaswarm-admin:alphaswarm-remediate.",
        ),
    ] = None,
) -> None:
    """Run the sandbox in the foreground until Ctrl-C (SIGINT) or SIGTERM."""
    from remediate.stack import require_sandbox

    require_sandbox()
    from sandbox import conditions, injections
    from sandbox.flow_env import flow_env, write_env_file
    from sandbox.server import SandboxServer

    if incident is not None:
        try:
            injections.resolve(incident)
        except injections.UnknownIncident:
            _unknown_incident(incident, injections.names())
    chosen = tuple(condition or ())
    for name in chosen:
        if name not in conditions.names():
            err.print(
                f"[red]unknown condition {name!r}[/red]; valid names:\n  "
                + "\n  ".join(conditions.names())
            )
            raise typer.Exit(2)
    if (rbac is None) != (as_user is None):
        err.print("[red]--rbac and --as go together[/red]: the file's grants and whose they are")
        raise typer.Exit(2)
    if rbac is not None and as_user is not None:
        from sandbox.rbac import Authorizer, RbacError

        try:
            Authorizer.load(rbac, as_user)  # a bad file or subject fails here, not at startup
        except RbacError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    redis, pool = _celery_backing() if celery else (None, None)
    try:
        server = SandboxServer(
            port=port,
            tick_seconds=tick,
            worker_pool=pool,
            conditions=chosen,
            rbac=rbac,
            as_user=as_user,
            anonymous_as_user=True,  # kubectl sends no token over plain HTTP
        ).start()
    except OSError as exc:
        if redis is not None:
            redis.stop()
        err.print(f"[red]cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}[/red]")
        raise typer.Exit(1) from exc
    try:
        path = server.write_kubeconfig(kubeconfig).resolve()
        print(f"kubeconfig: {path}", flush=True)
        env = flow_env(server.url, server.cluster, path, redis.url if redis is not None else None)
        env_file = write_env_file(path.with_name("sandbox.env"), env)
        print(f"flow settings ({env_file}):", flush=True)
        for key, value in env.items():
            print(f"  export {key}={shlex.quote(value)}", flush=True)
        if chosen:
            print(f"conditions: {', '.join(chosen)}", flush=True)
        if rbac is not None:
            print(f"rbac: every API request is authorized as {as_user} by {rbac}", flush=True)
        if incident is not None:
            try:
                injected = injections.inject(server.cluster, incident)
            except injections.IncidentError as exc:
                err.print(f"[red]cannot inject {incident}: {exc}[/red]")
                raise typer.Exit(2) from exc
            print(f"incident injected: {injected.name} (runbook {injected.branch})", flush=True)
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
        if redis is not None:
            redis.stop()
        print("sandbox stopped", flush=True)


def _celery_backing() -> tuple[RedisServer, WorkerPool]:
    """A private redis-server and a worker pool on it, for `sandbox up --celery`."""
    from sandbox.redis_server import RedisNotInstalledError, RedisServer
    from sandbox.worker_pool import WorkerPool

    try:
        redis = RedisServer().start()
    except (RedisNotInstalledError, RuntimeError) as exc:
        err.print(f"[red]cannot start redis-server: {exc}[/red]")
        raise typer.Exit(1) from exc
    return redis, WorkerPool(redis.url)


def _unknown_incident(name: str, known: list[str]) -> None:
    err.print(f"[red]unknown incident {name!r}[/red]; valid names:\n  " + "\n  ".join(known))
    raise typer.Exit(2)


@sandbox_app.command("inject")
def sandbox_inject(
    name: Annotated[str, typer.Argument(help="Incident name, e.g. crashloop-single.")],
    kubeconfig: Annotated[
        Path,
        typer.Option(
            "--kubeconfig", dir_okay=False, help="kubeconfig `remediate sandbox up` wrote."
        ),
    ] = DEFAULT_SANDBOX_KUBECONFIG,
) -> None:
    """Inject an incident into a running sandbox (found through its kubeconfig)."""
    from remediate.stack import require_sandbox

    require_sandbox()
    from sandbox.control_client import SandboxControlError, inject

    try:
        body = inject(kubeconfig, name)
    except SandboxControlError as exc:
        if exc.known:
            _unknown_incident(name, exc.known)
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    print(f"incident injected: {body['injected']} (runbook {body['branch']})")
    print(f"  symptom:    {body['symptom']}")
    print(f"  mitigation: {body['mitigation']}")


def _use_kubeconfig(kubeconfig: Path | None) -> None:
    """Flows read settings from the environment, so the option travels that way."""
    if kubeconfig is not None:
        if not kubeconfig.is_file():
            err.print(f"[red]kubeconfig not found: {kubeconfig}[/red]")
            raise typer.Exit(2)
        os.environ["REMEDIATE_KUBE__KUBECONFIG"] = str(kubeconfig.resolve())


def _run_flow(run: Callable[[], T]) -> T:
    """Run a flow in-process on the local Prefect server; a cluster that cannot be read is
    exit 1 with the adapter's message, not a traceback. Call prefect_environment() before
    importing the flow."""
    from remediate.prefect_runtime import quiet_prefect
    from tasks.adapters.errors import AdapterError

    try:
        with quiet_prefect():
            return run()
    except AdapterError as exc:
        err.print(f"[red]cannot read the cluster: {exc}[/red]")
        raise typer.Exit(1) from exc


def _run_health_sweep(as_json: bool) -> None:
    from remediate.prefect_runtime import prefect_environment

    prefect_environment()
    from flows.health_sweep import health_sweep
    from remediate.render import print_health_report

    # A look, not a trigger: the scheduled sweep is the one that opens incidents.
    report = _run_flow(lambda: health_sweep(open_incidents=False))
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        print_health_report(console, report)
    if not report.healthy:
        raise typer.Exit(3)


JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")]


@app.command("status")
def status(kubeconfig: KubeconfigOption = None, as_json: JsonOption = False) -> None:
    """Run the health-sweep flow against a cluster, report only: pods, Deployments and Endpoints
    in every watched namespace. Exits 3 when it finds something wrong."""
    _use_kubeconfig(kubeconfig)
    _run_health_sweep(as_json)


DEMO_INCIDENT = "crashloop-single"
DEMO_TICK_SECONDS = 0.1
DEMO_SYMPTOMS_TIMEOUT_SECONDS = 60.0


@app.command("demo")
def demo(
    incident: Annotated[
        str,
        typer.Option("--incident", help="The incident to inject and remediate (see `sandbox up`)."),
    ] = DEMO_INCIDENT,
    as_json: JsonOption = False,
) -> None:
    """Rehearse the runbook end to end (`make run`): start a sandbox in-process, inject an
    incident, triage it as a dry run (the plan), then with --apply (the change and how it was
    verified). Exits 3 when the incident was not mitigated."""
    from remediate.stack import require_sandbox

    require_sandbox()
    from sandbox import injections

    try:
        chosen = injections.resolve(incident)
    except injections.UnknownIncident:
        _unknown_incident(incident, injections.names())
    require_store()
    from remediate.prefect_runtime import prefect_environment

    prefect_environment()
    from sandbox.flow_env import flow_env
    from sandbox.server import SandboxServer

    say = (lambda _text: None) if as_json else console.print
    with SandboxServer(tick_seconds=DEMO_TICK_SECONDS) as server:
        path = server.write_kubeconfig(DEFAULT_SANDBOX_KUBECONFIG)
        os.environ.update(flow_env(server.url, server.cluster, path.resolve()))
        say(f"[bold]1. sandbox[/bold] cluster at {server.url} (kubeconfig: {path})")
        injections.inject(server.cluster, chosen.name)
        say(f"[bold]2. incident[/bold] {chosen.name} (runbook {chosen.branch}): {chosen.summary}")
        say(f"   symptom: {chosen.symptom}")
        _wait_for_symptoms(server, chosen.name)
        say("[bold]3. triage, dry run[/bold]: the decision and the plan, nothing changed")
        planned = _demo_triage(apply=False, as_json=as_json)
        say("[bold]4. triage --apply[/bold]: the change, then its verification")
        applied = _demo_triage(apply=True, as_json=as_json)
    if as_json:
        print(json.dumps({"incident": chosen.name, "dry_run": planned, "apply": applied}, indent=2))
    mitigated = (applied.get("outcome") or {}).get("status") == "mitigated"
    say(
        f"[green]{chosen.name} mitigated[/green]"
        if mitigated
        else f"[red]{chosen.name} NOT mitigated: escalated to a human[/red]"
    )
    if not mitigated:
        raise typer.Exit(3)


def _wait_for_symptoms(server: object, incident: str) -> None:
    """Triage what an operator would be alerted on, not a cluster half-way into the incident."""
    import time

    from sandbox.server import SandboxServer
    from sandbox.symptoms import showing

    assert isinstance(server, SandboxServer)
    deadline = time.monotonic() + DEMO_SYMPTOMS_TIMEOUT_SECONDS
    while not showing(server.cluster, incident):
        if time.monotonic() > deadline:
            err.print(f"[red]{incident} never showed its symptoms[/red]")
            raise typer.Exit(1)
        time.sleep(DEMO_TICK_SECONDS)


def _demo_triage(*, apply: bool, as_json: bool) -> dict[str, object]:
    """One triage run, as a sweep (no alert: the probes decide), printed step by step."""
    from flows.triage import VerifyPolicy, triage
    from remediate.render import print_triage_outcome

    result = _run_flow(
        lambda: triage(
            dry_run=not apply,
            # A rehearsal on the sandbox: the operator running it approves D's flip and F's
            # Postgres delete.
            approve_permissive=True,
            approve_postgres_delete=True,
            approved_by=f"{_operator()} (remediate demo, sandbox rehearsal)",
            # The sandbox ticks ten times a second: poll faster and call the HPA quiet sooner.
            verify=VerifyPolicy(attempts=200, delay_seconds=0.2, quiet_seconds=3.0),
        )
    )
    if not as_json:
        print_triage_outcome(console, result)
    body: dict[str, object] = result.model_dump(mode="json")
    return body


def _read_alerts(path: Path) -> dict[str, object]:
    """The payload file as a validated Alertmanager v4 body; exit 2 naming the problem.

    Runs before anything imports Prefect or reaches a cluster: a bad file costs nothing."""
    from tasks.models.alerts import InvalidAlertPayload, parse_alertmanager

    try:
        raw = path.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {path}: {exc.strerror or exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        batch = parse_alertmanager(raw)
    except InvalidAlertPayload as exc:
        err.print(f"[red]{path} is not an Alertmanager v4 payload: {exc}[/red]")
        raise typer.Exit(2) from exc
    return batch.model_dump(mode="json", by_alias=True)


@app.command("triage")
def triage_command(
    alerts: Annotated[
        Path,
        typer.Option(
            "--alerts", dir_okay=False, help="Alertmanager v4 webhook payload (JSON file)."
        ),
    ],
    apply: Annotated[
        bool, typer.Option("--apply", help="Change the cluster; without it, a dry run.")
    ] = False,
    as_json: JsonOption = False,
    kubeconfig: KubeconfigOption = None,
    approve_permissive: Annotated[
        bool,
        typer.Option(
            "--approve-permissive",
            help="Pre-approve runbook D's ALPHASWARM_AUTH_ENFORCE=permissive flip (a hard-rule "
            "bypass; the flow still refuses it unless Auth0 is down and the operator UI is "
            "firewalled). Without it the run pauses for an approval in Prefect.",
        ),
    ] = False,
    approve_postgres_delete: Annotated[
        bool,
        typer.Option(
            "--approve-postgres-delete",
            help="Pre-approve runbook F's delete of the Postgres pod (never in production). "
            "Without it the run pauses for an approval in Prefect.",
        ),
    ] = False,
    approval_timeout: Annotated[
        int,
        typer.Option("--approval-timeout", min=1, help="Seconds to wait for an approval."),
    ] = 300,
) -> None:
    """Triage an incident: probe the cluster, decide the runbook branch (platform before
    workload), and run that scenario's flow. Exits 2 on an invalid payload, 3 when the run
    escalated or failed."""
    body = _read_alerts(alerts)
    _use_kubeconfig(kubeconfig)
    require_store()
    from remediate.prefect_runtime import prefect_environment

    prefect_environment()
    from flows.triage import triage
    from remediate.render import print_triage_outcome
    from tasks.models.alerts import AlertBatch

    flags = [
        f
        for f, on in (
            ("--approve-permissive", approve_permissive),
            ("--approve-postgres-delete", approve_postgres_delete),
        )
        if on
    ]
    approved_by = f"{_operator()} (remediate triage {' '.join(flags)})" if flags else ""
    result = _run_flow(
        lambda: triage(
            alerts=AlertBatch.model_validate(body),
            dry_run=not apply,
            approve_permissive=approve_permissive,
            approve_postgres_delete=approve_postgres_delete,
            approved_by=approved_by,
            approval_timeout_seconds=approval_timeout,
        )
    )
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        print_triage_outcome(console, result)
    failed = result.outcome is not None and result.outcome.status in ("escalated", "failed")
    if result.escalate or failed:
        raise typer.Exit(3)


@app.command("revert")
def revert_command(
    action_id: Annotated[int, typer.Argument(help="The change's id (`remediate incidents show`).")],
    apply: Annotated[
        bool, typer.Option("--apply", help="Change the cluster; without it, a dry run.")
    ] = False,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Put back the state one automated change overwrote (its audit row keeps it), through the
    same gate as every change. Exits 2 when the action has nothing to put back, 3 when a guard
    refused it."""
    _use_kubeconfig(kubeconfig)
    require_store()
    from remediate.prefect_runtime import prefect_environment

    prefect_environment()
    from flows.put_back import NothingToPutBack, put_back_action, revert_of
    from remediate.prefect_runtime import quiet_prefect
    from tasks.adapters.errors import AdapterError
    from tasks.changes.gate import GuardRefused

    try:
        revert_of(action_id)  # a clear answer before Prefect starts anything
        with quiet_prefect():
            record = put_back_action(action_id=action_id, dry_run=not apply)
    except NothingToPutBack as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except GuardRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(3) from exc
    except AdapterError as exc:
        err.print(f"[red]the cluster did not take it: {exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"{record.status}: {record.summary}" + (f" ({record.note})" if record.note else "")
    )


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown operator"


@app.command("diagnose")
def diagnose(kubeconfig: KubeconfigOption = None, as_json: JsonOption = False) -> None:
    """The runbook's common diagnostic commands as one flow: pods in both namespaces, top
    consumers, recent events, the API's log tail, workload_run audit lines, terraform_runs."""
    _use_kubeconfig(kubeconfig)
    from remediate.prefect_runtime import prefect_environment

    prefect_environment()
    from flows.diagnostics import collect_diagnostics, render_diagnostics

    snapshot = _run_flow(collect_diagnostics)
    if as_json:
        print(snapshot.model_dump_json(indent=2))
    else:
        from rich.markdown import Markdown

        console.print(Markdown(render_diagnostics(snapshot)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
