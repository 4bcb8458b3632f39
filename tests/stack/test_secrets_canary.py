"""The project's secrets never land in what its runs write.

Each secret gets a unique canary value, read from files as a Kubernetes Secret mounted as a
volume gives them (REMEDIATE_SECRETS_DIR), never from the environment or a parameter:

- the control plane's bearer token (C scales through the control plane with it),
- the intake's bearer token (every alert below is sent with it),
- the incident store's password (a PostgreSQL URL; the test server trusts loopback, so the
  password travels through every connection without being checked),
- the Redis password (F's data check runs `redis-cli dbsize` in the Redis pod with it, written
  on the exec's stdin; the sandbox's Redis is given the same value, so it is checked).

A stack as `remediate up` starts it (Prefect server, served deployments, intake) then handles
one incident per runbook branch, each fired at the intake as Alertmanager would, the dangerous
ones approved through Prefect's API as an operator would in the UI. Afterwards no canary is
found in: the stack's logs, Prefect's database (flow run parameters, logs, artifacts, states),
the post-incident reports, every table of the incident store, or the intake's /metrics.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from remediate.stack import Stack
from sandbox import injections
from sandbox.flow_env import flow_env
from sandbox.redis_cli import set_requirepass
from sandbox.server import SandboxServer
from store.engine import dispose_all, session_for
from store.models import Incident
from tasks.settings import SECRETS_DIR_VARIABLE
from tests.flows.sandbox_settings import alert_payload
from tests.stack.up import api_call, flow_runs, stack_on

pytestmark = pytest.mark.timeout(900)

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
# One incident per runbook branch, in one cluster one after the other: (the sandbox's incident,
# the alert Alertmanager would send). D comes last: its outage (Auth0) outlasts the run, as it
# would in life, and the next alerts would rightly be put down to it.
INCIDENTS = (
    ("crashloop-single", "crashloop-single"),  # A
    ("queue-backlog", "queue-backlog"),  # C: the control plane's token
    ("ingress-503", "ingress-503"),  # E
    ("redis-down", "redis-down"),  # F
    ("crashloop-several", "crashloop-several"),  # B's road for several crashing pods
    ("jwks-503", "jwks-503"),  # D: approved through the API
)
APPROVAL = {"approved": True, "approver": "canary-test", "comment": ""}


def canary(name: str) -> str:
    return f"canary-{name}-{uuid.uuid4().hex}"


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def secrets_folder(folder: Path, values: dict[str, str]) -> Path:
    folder.mkdir(mode=0o700)
    for name, value in values.items():
        (folder / name).write_text(value + "\n")  # as `kubectl create secret --from-file`
    return folder


def fire(stack: Stack, token: str, body: dict[str, Any]) -> list[int]:
    """The incidents the intake opened or joined for the payload."""
    answer = httpx.post(
        stack.intake_url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return [int(i) for i in answer.json()["incidents"]]


def follow(stack: Stack, incidents: list[int]) -> list[dict[str, Any]]:
    """The incidents' triage runs to their end, approving any run that pauses for a human
    (D's scheduled revert, a run of its own 15 minutes on, is not waited for)."""
    tagged = {"tags": {"any_": [f"incident-{i}" for i in incidents]}}
    deadline = time.monotonic() + 240
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = flow_runs(stack.api_url, **tagged)
        for run in runs:
            if run["state_type"] == "PAUSED":
                body = {"run_input": APPROVAL}
                api_call(stack.api_url, "POST", f"/flow_runs/{run['id']}/resume", json=body)
        top = [r for r in runs if "triage" in r["tags"]]
        if top and all(r["state_type"] in FINAL for r in top):
            return top
        time.sleep(0.5)
    raise AssertionError(f"incidents {incidents}' runs did not finish: {runs}")


def files_holding(folder: Path, values: dict[str, str]) -> dict[str, list[str]]:
    """For each secret, the files under `folder` whose bytes contain its value."""
    found: dict[str, list[str]] = {name: [] for name in values}
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name, value in values.items():
            if value.encode() in data:
                found[name].append(str(path.relative_to(folder)))
    return found


def store_rows_holding(url: str, values: dict[str, str]) -> dict[str, list[str]]:
    """For each secret, the incident store's tables with a row whose text contains its value."""
    found: dict[str, list[str]] = {name: [] for name in values}
    with session_for(url) as session:
        tables = session.execute(
            text("select tablename from pg_tables where schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            rows = session.execute(text(f'select row_to_json(t)::text from "{table}" t'))
            dump = "\n".join(rows.scalars())
            for name, value in values.items():
                if value in dump:
                    found[name].append(table)
    return found


def incident_statuses(url: str, opened: dict[str, list[int]]) -> dict[str, set[str]]:
    """Each incident's status; two alerts that opened two incidents for one target leave the
    one triage merged them into."""
    with session_for(url) as session:
        found = {name: [session.get(Incident, i) for i in ids] for name, ids in opened.items()}
        return {
            name: {i.status.value for i in rows if i is not None} for name, rows in found.items()
        }


@pytest.fixture
def canary_env(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[dict[str, str], str, SandboxServer]]:
    values = {
        "REMEDIATE_CONTROL_PLANE__TOKEN": canary("control-plane"),
        "REMEDIATE_INTAKE_TOKEN": canary("intake"),
        "REMEDIATE_REDIS__PASSWORD": canary("redis"),
    }
    password = canary("store")
    values["REMEDIATE_STORE__URL"] = with_password(postgres_url, password)
    secrets = secrets_folder(tmp_path / "secrets", values)
    with pytest.MonkeyPatch.context() as env, SandboxServer(tick_seconds=0.05) as sandbox:
        for key in list(os.environ):
            if key.startswith(("PREFECT_", "REMEDIATE_")):
                env.delenv(key)
        sandbox.cluster.control_plane.token = values["REMEDIATE_CONTROL_PLANE__TOKEN"]
        set_requirepass(sandbox.cluster, values["REMEDIATE_REDIS__PASSWORD"])
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "state" / "kubeconfig.yaml")
        for key, value in flow_env(sandbox.url, sandbox.cluster, kubeconfig).items():
            if key not in values:  # the secrets come from the files only
                env.setenv(key, value)
        env.setenv(SECRETS_DIR_VARIABLE, str(secrets))
        env.setenv("REMEDIATE_INCIDENTS__REPORTS_DIR", str(tmp_path / "state" / "incidents"))
        # A then B restart alphaswarm-core a minute apart for two incidents: the cooldown would
        # rightly refuse B's restart (tests/flows/test_pod_crash.py), and this test needs each
        # branch to run its mitigation.
        env.setenv("REMEDIATE_SAFETY__COOLDOWN_SECONDS", "0")
        # One unrelated incident after another on alphaswarm-core, minutes apart: not relapses.
        env.setenv("REMEDIATE_INCIDENTS__RELAPSE_WINDOW_SECONDS", "0")
        yield {**values, "store password": password}, values["REMEDIATE_STORE__URL"], sandbox
    dispose_all()


def test_no_secret_is_written_anywhere_a_run_writes(
    tmp_path: Path, canary_env: tuple[dict[str, str], str, SandboxServer]
) -> None:
    values, store, sandbox = canary_env
    state = tmp_path / "state"
    # The scan would find them where they are meant to be: it is not blind.
    assert all(files_holding(tmp_path / "secrets", values).values())

    with stack_on(state, state / "kubeconfig.yaml") as stack:
        ended: dict[str, set[str]] = {}
        opened: dict[str, list[int]] = {}
        for incident_name, alert in INCIDENTS:
            injections.inject(sandbox.cluster, incident_name)
            opened[incident_name] = fire(
                stack, values["REMEDIATE_INTAKE_TOKEN"], alert_payload(alert)
            )
            ended[incident_name] = {r["state_type"] for r in follow(stack, opened[incident_name])}
        metrics = httpx.get(stack.intake_url.replace("/api/v1/alerts", "/metrics")).text

    assert {n: s for n, s in ended.items() if s != {"COMPLETED"}} == {}
    # Every branch mitigated its incident; D's stays verified until its revert, 15 minutes on.
    statuses = incident_statuses(store, opened)
    assert statuses == {n: {"verified" if n == "jwks-503" else "resolved"} for n, _ in INCIDENTS}
    # C went through the control plane: its token was used, and accepted.
    assert sandbox.cluster.control_plane.rows, "C never reached the control plane"
    leaks = {
        "files (logs, Prefect's database, reports)": files_holding(state, values),
        "incident store": store_rows_holding(store, values),
        "/metrics": {n: ["/metrics"] for n, v in values.items() if v in metrics},
    }
    assert {where: {n: f for n, f in found.items() if f} for where, found in leaks.items()} == {
        where: {} for where in leaks
    }
