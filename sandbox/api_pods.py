"""The pod subresources the kubelet would serve: `log` (plain text) and `exec` (WebSocket).

Both read cluster.runtime keyed by pod uid, so a recreated pod with the same name starts fresh.
exec speaks the Kubernetes channel protocol (v5/v4.channel.k8s.io): one binary frame per write,
first byte the channel (1 stdout, 2 stderr, 3 the final Status). That is all
`kubernetes.stream.stream` and `kubectl exec` (WebSocket first since 1.30) need.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from sandbox.api_objects import container_names, default_container, require
from sandbox.api_wire import ApiError, dumps, parse_bool, parse_int
from sandbox.cluster import SandboxCluster
from sandbox.resources import POD
from sandbox.runtime import ExecResult
from sandbox.shell import unwrap
from sandbox.store import Obj, now_rfc3339

EXEC_PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
_STATUS_PROTOCOLS = {"v5.channel.k8s.io", "v4.channel.k8s.io"}


def _container(request: web.Request, pod: Obj, name: str) -> str:
    container = request.query.get("container") or default_container(pod)
    if container not in container_names(pod):
        raise ApiError(400, f"container {container} is not valid for pod {name}", "BadRequest")
    return container


def _started_at(pod: Obj, container: str) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            running = (cs.get("state") or {}).get("running") or {}
            if running.get("startedAt"):
                return str(running["startedAt"])
    return str((pod.get("metadata") or {}).get("creationTimestamp") or now_rfc3339())


def read_log(
    request: web.Request, cluster: SandboxCluster, namespace: str, name: str
) -> web.Response:
    """Always text/plain, even though the Python client sends Accept: application/json."""
    pod = require(cluster.store, POD, namespace, name)
    q = request.query
    container = _container(request, pod, name)
    previous = parse_bool(q.get("previous"), "previous")
    lines = cluster.runtime.logs(pod["metadata"].get("uid", ""), container, previous=previous)
    if lines is None:
        raise ApiError(
            400,
            f'previous terminated container "{container}" in pod "{name}" not found',
            "BadRequest",
        )
    tail = parse_int(q.get("tailLines"), "tailLines")
    if tail is not None and tail >= 0:
        lines = lines[len(lines) - tail :] if tail else []
    if parse_bool(q.get("timestamps"), "timestamps"):
        stamp = _started_at(pod, container).replace("Z", ".000000000Z")
        lines = [f"{stamp} {line}" for line in lines]
    data = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode()
    limit = parse_int(q.get("limitBytes"), "limitBytes")
    if limit is not None and limit > 0:
        data = data[:limit]
    return web.Response(body=data, content_type="text/plain", charset="utf-8")


def exit_status(result: ExecResult, argv: list[str]) -> bytes:
    if result.exit_code == 0:
        return dumps({"metadata": {}, "status": "Success"})
    return dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command"
            f" {argv}, exit code {result.exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
        }
    )


STDIN_WAIT_SECONDS = 5.0


async def _read_stdin(ws: web.WebSocketResponse) -> str:
    """What the client writes on channel 0 up to its first newline (or until it closes stdin,
    v5's close frame, or stops writing): the one line `sandbox.shell`'s script reads."""
    data = ""
    while "\n" not in data:
        try:
            message = await ws.receive(timeout=STDIN_WAIT_SECONDS)
        except TimeoutError:
            break
        payload = message.data
        if message.type == WSMsgType.TEXT and isinstance(payload, str) and payload[:1] == "\x00":
            data += payload[1:]
        elif message.type == WSMsgType.BINARY and isinstance(payload, bytes):
            if payload[:1] == b"\x00":
                data += payload[1:].decode(errors="replace")
            elif payload == b"\xff\x00":  # v5: the client closed stdin
                break
        else:
            break
    return data


async def exec_pod(
    request: web.Request, cluster: SandboxCluster, namespace: str, name: str
) -> web.StreamResponse:
    pod = require(cluster.store, POD, namespace, name)
    container = _container(request, pod, name)
    argv = list(request.query.getall("command", []))
    if not argv:
        raise ApiError(400, "you must specify at least 1 command", "BadRequest")
    ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "Upgrade request required", "BadRequest")
    await ws.prepare(request)
    q = request.query
    stdin = await _read_stdin(ws) if parse_bool(q.get("stdin"), "stdin") else ""
    command = unwrap(argv, stdin)
    # On a thread: a handler may run a real program (the Celery CLI) and must not stall the API.
    result = await asyncio.to_thread(cluster.runtime.exec, namespace, name, container, command)
    if result.stdout and q.get("stdout") != "false":
        await ws.send_bytes(b"\x01" + result.stdout.encode())
    if result.stderr and q.get("stderr") != "false":
        await ws.send_bytes(b"\x02" + result.stderr.encode())
    if ws.ws_protocol in _STATUS_PROTOCOLS:
        await ws.send_bytes(b"\x03" + exit_status(result, argv))
    elif result.exit_code:
        await ws.send_bytes(
            b"\x03" + f"command terminated with exit code {result.exit_code}".encode()
        )
    await ws.close()
    return ws
