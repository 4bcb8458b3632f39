"""`redis-cli` exec'd in the Redis pod, answered from what its volume holds.

Only the Redis image ships redis-cli, so only a pod running it answers; elsewhere the container
runtime's "executable file not found" speaks. Connection options (`-h`, `-p`, `-n`, `-a PASSWORD`,
`--user`, `--pass`, `-u URL`) and output flags (`--no-auth-warning`, `--raw`, `--no-raw`) are
accepted and skipped; the commands the runbook and the flows need are answered: `ping`, `dbsize`,
and `llen KEY` (a Celery queue on Redis is a list of its name; a missing list is 0, as on a real
Redis). Output is what redis-cli prints when its stdout is not a terminal, as under `kubectl exec`
without `-t`: bare values, no `(integer)`.

While no Redis pod serves (the `redis-down` incident), every command fails to connect. With real
Celery workers, `sandbox.celery_exec` answers `llen` from the real broker first.

The sandbox's Redis has a password, as a production one does (`--requirepass` in the
redis-stack image's REDIS_ARGS): a command without `-a PASSWORD` (or REDISCLI_AUTH, which
`sandbox.shell` turns into `-a`) is refused with Redis's own `NOAUTH Authentication required.`,
a wrong one with `WRONGPASS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.resources import POD, STATEFULSET
from sandbox.runtime import ExecResult
from sandbox.volumes import redis_claim

SANDBOX_REDIS_PASSWORD = "sandbox-redis-requirepass"
NOAUTH = "NOAUTH Authentication required.\n"
WRONGPASS = "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n" + NOAUTH
_VALUED_OPTIONS = frozenset({"-h", "-p", "-n", "-a", "-u", "-s", "--user", "--pass"})
_FLAGS = frozenset({"--no-auth-warning", "--raw", "--no-raw", "-e", "--verbose"})
REFUSED = "Could not connect to Redis at 127.0.0.1:6379: Connection refused\n"


def command_of(argv: Sequence[str]) -> list[str] | None:
    """The command words of `redis-cli [options] COMMAND ARGS...`, or None for another program."""
    if not argv or argv[0].rsplit("/", 1)[-1] != "redis-cli":
        return None
    words = list(argv[1:])
    while words:
        if words[0] in _VALUED_OPTIONS:
            words = words[2:]
        elif words[0] in _FLAGS:
            words = words[1:]
        else:
            break
    return [words[0].lower(), *words[1:]] if words else []


def requirepass(pod: Mapping[str, Any]) -> str | None:
    """The password the pod's server requires: `--requirepass X` in REDIS_ARGS."""
    for container in pod["spec"]["containers"]:
        for var in container.get("env") or []:
            if var.get("name") == "REDIS_ARGS":
                words = str(var.get("value") or "").split()
                if "--requirepass" in words[:-1]:
                    return words[words.index("--requirepass") + 1]
    return None


def set_requirepass(cluster: Any, password: str, namespace: str = "alphaswarm") -> None:
    """Give the sandbox's Redis another password (a test's unique value), as rotating the
    Secret behind REDIS_ARGS would: in the StatefulSet's template and in the running pod."""

    def edit(obj: dict[str, Any]) -> None:
        spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
        for container in spec["containers"]:
            for var in container.get("env") or []:
                if var.get("name") == "REDIS_ARGS":
                    var["value"] = f"--requirepass {password}"

    cluster.store.update(STATEFULSET, namespace, "redis-master", edit)
    pods, _ = cluster.store.list(POD, namespace, labels="app=redis")
    for pod in pods:
        cluster.store.update(POD, namespace, pod["metadata"]["name"], edit)


def _given_password(argv: Sequence[str]) -> str | None:
    words = list(argv[1:])
    for flag in ("-a", "--pass"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return None


def auth_refused(pod: Mapping[str, Any], argv: Sequence[str]) -> ExecResult | None:
    """What the server answers a command without the right password; None when it is right
    (or the server has none)."""
    wanted = requirepass(pod)
    if wanted is None:
        return None
    given = _given_password(argv)
    if given == wanted:
        return None
    return ExecResult(stderr=NOAUTH if given is None else WRONGPASS, exit_code=1)


def has_redis_cli(pod: Mapping[str, Any]) -> bool:
    return any("redis" in c["image"].rsplit(":", 1)[0] for c in pod["spec"]["containers"])


def redis_serving(cluster: Any, namespace: str) -> bool:
    pods, _ = cluster.store.list(POD, namespace, labels="app=redis")
    return any(cluster.behaviour.serving(p) for p in pods)


def redis_cli(cluster: Any, pod: Mapping[str, Any], argv: list[str]) -> ExecResult | None:
    command = command_of(argv)
    if command is None or not has_redis_cli(pod):
        return None
    ns = pod["metadata"]["namespace"]
    claim = redis_claim(cluster, ns)
    if claim is None or not redis_serving(cluster, ns):
        return ExecResult(stderr=REFUSED, exit_code=1)
    refused = auth_refused(pod, argv)
    if refused is not None:
        return refused
    if command == ["ping"]:
        return ExecResult(stdout="PONG\n")
    if command == ["dbsize"]:
        return ExecResult(stdout=f"{cluster.volumes.get(ns, claim, 'dbsize')}\n")
    if len(command) == 2 and command[0] == "llen":
        return ExecResult(stdout=f"{cluster.volumes.get(ns, claim, command[1])}\n")
    return ExecResult(
        stderr="redis-cli: the sandbox answers only ping, dbsize and llen KEY\n", exit_code=1
    )
