"""The check every flow test ends with (tests/flows/conftest.py): each write the sandbox took
for real must be accounted for by an audit row of a change the gate sent. A journalled write
without one reached the cluster around the gate. And every exec the sandbox saw must be one of
the declared read-only commands (tasks/adapters/exec_commands.py): exec is on the read-only
view, so an undeclared argv reaching a pod is as much a way around the gate as a write."""

from __future__ import annotations

import re

from sqlmodel import select

from sandbox.control_plane import APP_NAMESPACE
from sandbox.journal import Request
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tasks.adapters.exec_commands import declared

# Requests that POST but are no write: `kubectl exec` (and any client on the SPDY/WebSocket
# upgrade) POSTs to pods/NAME/exec; the runbook's probes exec read-only commands, and
# `ClusterReader.exec` is on the read-only view on purpose. They are not writes to account for
# (the sandbox answers them 101, which `Journal.mutations` drops anyway); execs are checked
# against the declared commands instead (`undeclared_execs`), whatever their method or status.
READ_ONLY_WRITES = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/(exec|attach|portforward)$")
EXEC = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/exec$")

# A write's path, as the gate's audit row names its target (`Change.target.key`).
WRITE_TARGETS = (
    (
        re.compile(
            r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)(/scale)?$"
        ),
        "Deployment",
    ),
    (
        re.compile(
            r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/statefulsets/(?P<name>[^/]+)(/scale)?$"
        ),
        "StatefulSet",
    ),
    (
        re.compile(
            r"^/apis/autoscaling/v2/namespaces/(?P<ns>[^/]+)/horizontalpodautoscalers/"
            r"(?P<name>[^/]+)$"
        ),
        "HorizontalPodAutoscaler",
    ),
    # The control plane's scale writes a Deployment of the application namespace.
    (re.compile(r"^/manage/deployments/(?P<name>[^/]+)/scale$"), "Deployment"),
)
POD_DELETE = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)$")

# Rows that say nothing was sent for real: a dry run's plan, or a guard's refusal.
NOTHING_SENT = {ActionStatus.PLANNED, ActionStatus.REFUSED}


def target_prefix(request: Request) -> str | None:
    """The audit row target key a write must match: exact, or `Pod/NS/` for a pod delete (a
    delete by selector is recorded as `Pod/NS/-l SELECTOR`, so any Pod row in NS will do).
    None: no gated change writes this path."""
    if request.method == "DELETE" and (found := POD_DELETE.match(request.path)):
        return f"Pod/{found['ns']}/"
    for pattern, kind in WRITE_TARGETS:
        if found := pattern.match(request.path):
            namespace = found.groupdict().get("ns") or APP_NAMESPACE
            return f"{kind}/{namespace}/{found['name']}"
    return None


def undeclared_execs(sandboxes: list[SandboxServer]) -> list[str]:
    """Every exec request (GET from the Python client, POST from kubectl; whatever the answer)
    whose argv is not a declared command, described for the failure message. An attach or a
    port-forward is never declared."""
    problems = []
    for server in sandboxes:
        for request in server.cluster.journal.requests():
            if not READ_ONLY_WRITES.match(request.path):
                continue
            argv = request.query.get("command", [])
            if not EXEC.match(request.path) or declared(argv) is None:
                problems.append(
                    f"{request.method} {request.path} {argv}: not a declared read-only command"
                )
    return problems


def ungated_writes(sandboxes: list[SandboxServer], urls: set[str]) -> list[str]:
    """Every non-dry-run write the sandboxes took that no audit row of a change that was sent
    accounts for, described for the failure message."""
    sent: list[str] = []
    for url in sorted(urls):
        with session_for(url) as session:
            rows = session.exec(select(IncidentAction)).all()
        sent += [r.target_key for r in rows if not r.dry_run and r.status not in NOTHING_SENT]
    problems = undeclared_execs(sandboxes)
    for server in sandboxes:
        for request in server.cluster.journal.mutations():
            if READ_ONLY_WRITES.match(request.path):
                continue
            prefix = target_prefix(request)
            if prefix is None:
                problems.append(f"{request.method} {request.path}: no gated change writes this")
            elif not any(
                key == prefix or (prefix.endswith("/") and key.startswith(prefix)) for key in sent
            ):
                problems.append(
                    f"{request.method} {request.path}: no audit row for {prefix}* whose change "
                    f"was sent (sent: {sorted(set(sent))})"
                )
    return problems
