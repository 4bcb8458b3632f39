"""`remediate up`: the running system on one machine.

    python -m remediate.prefect_server
                                  the API and the UI, as `prefect server start` runs them,
                                  503s retried in the server (SQLite under var/prefect unless
                                  PREFECT_API_DATABASE_CONNECTION_URL names PostgreSQL)
    python -m deployments.serve   every deployment, each run in a process of its own
    python -m deployments.intake  the Alertmanager webhook, with its outbox
    the sandbox                   unless --kubeconfig names a real cluster; in this process

Each child runs in its own process group with its output in var/stack/logs/, and is stopped,
with whatever it started, on Ctrl-C or SIGTERM. On the sandbox a sample incident is injected
and the Alertmanager payload it would raise is POSTed to the intake, so the first thing an
operator sees in the UI is a real alert becoming a verified mitigation.
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


@dataclass
class StackOptions:
    state_dir: Path = Path("var")
    kubeconfig: Path | None = None  # a real cluster; None: the sandbox
    prefect_port: int = 4200
    intake_port: int = 9095
    sample: bool = True
    host: str = "127.0.0.1"


@dataclass
class Stack:
    """What `up` started: URLs for the operator, children to stop."""

    options: StackOptions
    prefect_url: str = ""
    intake_url: str = ""
    kubeconfig: Path | None = None
    token_source: str = ""
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
    if sandbox is not None and options.sample:
        threading.Thread(
            target=_sample, args=(stack, sandbox, token, say), name="sample", daemon=True
        ).start()
    return stack


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
    """Inject the sample incident, send the alert it raises, and follow its incident."""
    from sandbox import injections
    from sandbox.alerts import crashloop_payload
    from sandbox.symptoms import showing

    try:
        injections.inject(sandbox.cluster, SAMPLE_INCIDENT)
        deadline = time.monotonic() + SAMPLE_TIMEOUT_SECONDS
        while not showing(sandbox.cluster, SAMPLE_INCIDENT):
            if time.monotonic() > deadline:
                say(f"sample: {SAMPLE_INCIDENT} never showed its symptoms")
                return
            time.sleep(SANDBOX_TICK_SECONDS)
        body = crashloop_payload(sandbox.cluster, *SAMPLE_TARGET)
        answer = _post(stack.intake_url, token, body)
        say(f"sample: {SAMPLE_INCIDENT} injected; Alertmanager payload sent: {answer['message']}")
        fingerprint = body["alerts"][0]["fingerprint"]
        _follow(fingerprint, say, deadline)
    except Exception as exc:  # the stack serves on; the operator reads why the sample failed
        say(f"sample: failed: {type(exc).__name__}: {exc}")


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


def _follow(fingerprint: str, say: Any, deadline: float) -> None:
    """Print the status of the incident holding the sample alert as it changes, until it ends
    or the deadline passes. Followed by the alert, not the incident's id: when triage finds the
    incident is another one's (the health sweep may have opened it first), the two merge."""
    from sqlmodel import col, select

    from store.engine import session_for
    from store.models import Incident, IncidentAlert, IncidentStatus
    from tasks.settings import Settings

    url = Settings().store.url.get_secret_value()
    seen: tuple[int | None, str | None] = (None, None)
    while time.monotonic() < deadline:
        with session_for(url) as session:
            incident = session.exec(
                select(Incident)
                .join(IncidentAlert, col(IncidentAlert.incident_id) == col(Incident.id))
                .where(IncidentAlert.fingerprint == fingerprint)
            ).first()
        if incident is not None:
            if (incident.id, incident.status) != seen:
                seen = (incident.id, incident.status)
                say(f"sample: incident {incident.id} is {incident.status}")
            ended = incident.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED)
            if ended and incident.report_path:
                say(f"sample: incident {incident.id} report: {incident.report_path}")
                return
        time.sleep(0.5)
    say(f"sample: incident {seen[0]} still {seen[1]} after {SAMPLE_TIMEOUT_SECONDS:.0f} s")
