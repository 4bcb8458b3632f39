"""`remediate up`: the running system on one machine.

    python -m remediate.prefect_server
                                  the API and the UI, as `prefect server start` runs them,
                                  503s retried in the server (SQLite under var/prefect unless
                                  PREFECT_API_DATABASE_CONNECTION_URL names PostgreSQL)
    python -m deployments.serve   every deployment, each run in a process of its own
    python -m deployments.intake  the Alertmanager webhook, with its outbox
    the sandbox                   unless --kubeconfig names a real cluster; in this process
    prometheus, 2 alertmanagers   on the sandbox, when Debian's binaries are installed: the
                                  monitoring loop (remediate.monitoring), infra/prometheus's
                                  rules at rehearsal speed, notifying the intake

Each child runs in its own process group with its output in var/stack/logs/, and is stopped,
with whatever it started, on Ctrl-C or SIGTERM. On the sandbox a sample incident is injected;
Prometheus raises its alert and Alertmanager notifies the intake, so the first thing an operator
sees in the UI is a real alert becoming a verified mitigation, and Alertmanager's resolved
notification closing it. Without the binaries the sample sends the payload Alertmanager would
(and its resolved notification once the fix held), and says so.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediate.processes import Child, answers, free_port, prefect_server

PREFECT_READY_SECONDS = 120.0  # a fresh SQLite database is migrated first
SERVE_READY_SECONDS = 90.0
INTAKE_READY_SECONDS = 60.0
SANDBOX_TICK_SECONDS = 0.2
SAMPLE_INCIDENT = "crashloop-single"
SAMPLE_TARGET = ("alphaswarm", "alphaswarm-core")
SAMPLE_TIMEOUT_SECONDS = 180.0
# The monitoring loop's speed: every production duration of the rules and routes divided by
# this (remediate/monitoring/timing.py), so `for: 15m` fires after 15 s.
MONITORING_SPEED = 60.0


@dataclass
class StackOptions:
    state_dir: Path = Path("var")
    kubeconfig: Path | None = None  # a real cluster; None: the sandbox
    prefect_port: int = 4200
    intake_port: int = 9095
    sample: bool = True
    host: str = "127.0.0.1"
    monitoring: bool = True  # on the sandbox, when the binaries are installed
    speed: float = MONITORING_SPEED


@dataclass
class Stack:
    """What `up` started: URLs for the operator, children to stop."""

    options: StackOptions
    prefect_url: str = ""
    intake_url: str = ""
    kubeconfig: Path | None = None
    token_source: str = ""
    prometheus_url: str = ""  # empty: no monitoring loop runs
    alertmanager_urls: tuple[str, ...] = ()
    monitoring_note: str = ""  # why no loop runs, when it does not
    sample_alert: dict[str, Any] | None = None  # without the loop: the payload the sample sent
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.prefect_url}/api"


def intake_token(state_dir: Path) -> tuple[str, str]:
    """REMEDIATE_INTAKE_TOKEN (the variable, or its file in REMEDIATE_SECRETS_DIR), or one
    generated once and kept (mode 0600) under the state dir."""
    from tasks.settings import Settings

    given = Settings().intake_token.get_secret_value()
    if given:
        return given, "REMEDIATE_INTAKE_TOKEN"
    path = state_dir / "intake-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip(), str(path.resolve())


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _deployment_served(api_url: str, name: str) -> Any:
    """The deployment exists and its runner polls for runs (Prefect marks it READY): before
    that, a run created for it waits for the runner's first poll."""

    def polled() -> bool:
        try:
            with urllib.request.urlopen(f"{api_url}/deployments/name/{name}", timeout=2) as got:
                return bool(json.loads(got.read()).get("status") == "READY")
        except (OSError, ValueError):
            return False

    return polled


def start(options: StackOptions, say: Any, exits: ExitStack) -> Stack:
    """Start every part, in dependency order; each one stops when `exits` closes."""
    if options.kubeconfig is None:  # before anything starts: nothing to stop when it is missing
        require_sandbox("or pass --kubeconfig to use a real cluster")
    from store.schema import upgrade
    from tasks.settings import Settings

    state = options.state_dir.resolve()
    logs = state / "stack" / "logs"
    stack = Stack(options)
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(state / "prefect"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("NO_PROXY", "127.0.0.1,localhost")
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

    upgrade(Settings().store.url.get_secret_value())  # the served flows refuse an old store

    token, stack.token_source = intake_token(state)
    env["REMEDIATE_INTAKE_TOKEN"] = token

    prefect_port = options.prefect_port or free_port()
    stack.prefect_url = f"http://{options.host}:{prefect_port}"
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server_env["PREFECT_UI_API_URL"] = f"{stack.prefect_url}/api"
    server = _child(
        stack,
        exits,
        "prefect-server",
        prefect_server(options.host, prefect_port),
        server_env,
        logs,
    )
    env["PREFECT_API_URL"] = stack.api_url

    sandbox = None
    if options.kubeconfig is None:
        sandbox = _start_sandbox(state, env, exits)
        stack.kubeconfig = Path(env["REMEDIATE_KUBE__KUBECONFIG"])
    else:
        stack.kubeconfig = options.kubeconfig.resolve()
        env["REMEDIATE_KUBE__KUBECONFIG"] = str(stack.kubeconfig)
    stack.env = env

    server.wait_until(answers(f"{stack.api_url}/health"), PREFECT_READY_SECONDS, "API health")
    say(f"prefect server ready at {stack.prefect_url}")
    _announce(state, stack.api_url, exits)
    serve = _child(stack, exits, "served-deployments", _python("deployments.serve"), env, logs)
    intake_port = options.intake_port or free_port()
    intake = _child(
        stack,
        exits,
        "intake",
        _python("deployments.intake", "--host", options.host, "--port", str(intake_port)),
        env,
        logs,
    )
    stack.intake_url = f"http://{options.host}:{intake_port}/api/v1/alerts"
    serve.wait_until(
        _deployment_served(stack.api_url, Settings().intake.triage_deployment),
        SERVE_READY_SECONDS,
        "triage deployment polled by its runner",
    )
    intake.wait_until(
        answers(f"http://{options.host}:{intake_port}/healthz"), INTAKE_READY_SECONDS, "health"
    )
    if sandbox is not None:
        _start_monitoring(stack, sandbox, token, state, logs, exits)
    if sandbox is not None and options.sample:
        threading.Thread(
            target=_sample, args=(stack, sandbox, token, say), name="sample", daemon=True
        ).start()
    return stack


def _start_monitoring(
    stack: Stack, sandbox: Any, token: str, state: Path, logs: Path, exits: ExitStack
) -> None:
    """Prometheus and two Alertmanagers watching the sandbox, when asked for and installed."""
    from remediate.monitoring.loop import missing_binaries, start_loop
    from sandbox.blackbox_probe import CLIENT_URL

    if not stack.options.monitoring:
        stack.monitoring_note = "off (--no-monitoring)"
        return
    missing = missing_binaries()
    if missing:
        stack.monitoring_note = (
            f"off: {', '.join(missing)} not installed (apt-get install prometheus "
            "prometheus-alertmanager; `make setup` does)"
        )
        return
    # Alertmanager reads the token from a file: the one `up` generated, else a copy (mode 0600)
    # of the one the environment or REMEDIATE_SECRETS_DIR gave.
    token_file = Path(stack.token_source)
    if not token_file.is_file():
        token_file = state / "monitoring" / "intake-token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.touch(mode=0o600)
        token_file.write_text(token)
    loop = start_loop(
        sandbox_url=sandbox.url,
        intake_url=stack.intake_url,
        token_file=token_file,
        state_dir=state,
        log_dir=logs,
        speed=stack.options.speed,
        probe_urls=(stack.env["REMEDIATE_AUTH__JWKS_URL"], CLIENT_URL),
        exits=exits,
    )
    stack.children.extend(loop.children)
    stack.prometheus_url, stack.alertmanager_urls = loop.prometheus_url, loop.alertmanager_urls


def _announce(state: Path, api_url: str, exits: ExitStack) -> None:
    """Tell the CLI run from this directory which API to use while the stack runs."""
    from remediate.prefect_runtime import STACK_API_FILE

    if state != STACK_API_FILE.parent.parent.resolve():
        return  # another state dir (a test's): the project's CLI is not pointed at it
    STACK_API_FILE.parent.mkdir(parents=True, exist_ok=True)
    STACK_API_FILE.write_text(api_url + "\n")
    exits.callback(STACK_API_FILE.unlink, missing_ok=True)


def _child(
    stack: Stack,
    exits: ExitStack,
    name: str,
    argv: list[str],
    env: dict[str, str],
    logs: Path,
) -> Child:
    child = Child(name, argv, dict(env), logs / f"{name}.log").start()
    exits.callback(child.stop)
    stack.children.append(child)
    return child


SANDBOX_MISSING = (
    "the sandbox is not installed (it is a distribution of its own, which production installs "
    "leave out): pip install 'alphaswarm-remediate[sandbox]'"
)


def require_sandbox(alternative: str = "") -> None:
    """Exit 2 with the fix, not an ImportError traceback, when the sandbox is not installed;
    `alternative` names another way out (the commands that can do without it)."""
    import importlib.util

    if importlib.util.find_spec("sandbox") is None:
        print(SANDBOX_MISSING + (f", {alternative}" if alternative else ""), file=sys.stderr)
        raise SystemExit(2)


def _start_sandbox(state: Path, env: dict[str, str], exits: ExitStack) -> Any:
    from sandbox.flow_env import flow_env
    from sandbox.server import SandboxServer

    server = exits.enter_context(SandboxServer(tick_seconds=SANDBOX_TICK_SECONDS))
    path = server.write_kubeconfig(state / "sandbox" / "kubeconfig.yaml").resolve()
    env.update(flow_env(server.url, server.cluster, path))
    return server


def _sample(stack: Stack, sandbox: Any, token: str, say: Any) -> None:
    """Inject the sample incident and follow the incident its alert opens to its end. With the
    monitoring loop, Prometheus raises the alert and Alertmanager notifies and resolves it;
    without, the payloads Alertmanager would send are posted here."""
    from sandbox import injections

    try:
        opened_after = _utcnow()
        injections.inject(sandbox.cluster, SAMPLE_INCIDENT)
        deadline = time.monotonic() + SAMPLE_TIMEOUT_SECONDS
        if stack.prometheus_url:
            say(
                f"sample: {SAMPLE_INCIDENT} injected; Prometheus raises KubePodCrashLooping "
                f"once it has lasted its `for:` (rules at {stack.options.speed:g}x speed)"
            )
        else:
            _send_sample_alert(stack, sandbox, token, say, deadline)
        _follow(
            opened_after,
            say,
            deadline,
            resolve=None
            if stack.prometheus_url
            else (lambda: _send_sample_resolved(stack, sandbox, token, say)),
        )
    except Exception as exc:  # the stack serves on; the operator reads why the sample failed
        say(f"sample: failed: {type(exc).__name__}: {exc}")


def _utcnow() -> Any:
    from store.types import utcnow

    return utcnow()


def _send_sample_alert(stack: Stack, sandbox: Any, token: str, say: Any, deadline: float) -> None:
    from sandbox.alerts import crashloop_payload
    from sandbox.symptoms import showing

    while not showing(sandbox.cluster, SAMPLE_INCIDENT):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{SAMPLE_INCIDENT} never showed its symptoms")
        time.sleep(SANDBOX_TICK_SECONDS)
    stack.sample_alert = crashloop_payload(sandbox.cluster, *SAMPLE_TARGET)
    answer = _post(stack.intake_url, token, stack.sample_alert)
    say(
        f"sample: {SAMPLE_INCIDENT} injected; the Alertmanager payload it raises sent "
        f"(monitoring {stack.monitoring_note}): {answer['message']}"
    )


def _send_sample_resolved(stack: Stack, sandbox: Any, token: str, say: Any) -> bool:
    """What Alertmanager sends once Prometheus sees the symptom gone: only then."""
    from sandbox.symptoms import showing

    if stack.sample_alert is None or showing(sandbox.cluster, SAMPLE_INCIDENT):
        return False
    body = json.loads(json.dumps(stack.sample_alert))
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = _utcnow().isoformat().replace("+00:00", "Z")
    answer = _post(stack.intake_url, token, body)
    say(f"sample: the symptom is gone; the resolved notification sent: {answer['message']}")
    stack.sample_alert = None
    return True


def _post(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def _follow(opened_after: Any, say: Any, deadline: float, resolve: Any = None) -> None:
    """Print the sample's incident (the first opened since the injection) and its alerts as
    they change, until it ends with its report or the deadline passes. `resolve`, without the
    monitoring loop: called once the fix held, to send the resolved notification."""
    from sqlmodel import col, select

    from store.engine import session_for
    from store.models import Incident, IncidentAlert, IncidentStatus
    from tasks.settings import Settings

    url = Settings().store.url.get_secret_value()
    seen: tuple[int | None, str | None] = (None, None)
    alerts_seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        with session_for(url, read_only=True) as session:
            incident = session.exec(
                select(Incident)
                .where(col(Incident.opened_at) >= opened_after)
                .order_by(col(Incident.id))
            ).first()
            alerts = (
                session.exec(
                    select(IncidentAlert).where(IncidentAlert.incident_id == incident.id)
                ).all()
                if incident is not None
                else []
            )
        for alert in alerts:
            if (alert.fingerprint, alert.status) not in alerts_seen:
                alerts_seen.add((alert.fingerprint, alert.status))
                what = "firing" if alert.status == "firing" else "resolved"
                pod = alert.labels.get("pod", "")
                say(
                    f"sample: alert {alert.alertname} {pod} {what} at the intake".replace("  ", " ")
                )
        if incident is not None:
            if (incident.id, incident.status) != seen:
                seen = (incident.id, incident.status)
                say(f"sample: incident {incident.id} is {incident.status}")
            if resolve is not None and incident.held_at is not None and resolve():
                resolve = None
            ended = incident.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED)
            if ended and incident.report_path:
                say(f"sample: incident {incident.id} report: {incident.report_path}")
                return
        time.sleep(0.5)
    say(f"sample: incident {seen[0]} still {seen[1]} after {SAMPLE_TIMEOUT_SECONDS:.0f} s")
