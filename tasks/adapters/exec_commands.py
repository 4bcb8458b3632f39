"""The commands the runbook execs in pods, declared here and nowhere else.

`kubectl exec` runs whatever it is handed, so the read-only view takes an `ExecCommand` made by
one of this module's builders, and the adapter refuses, before anything is sent, an argv that
none of them would make (`declared`). Every one of them only reads:

| name | argv | who runs it |
| --- | --- | --- |
| curl-jwks | `curl -fsS URL` | D's probe and its revert: JWKS from inside a core pod |
| runs-list | `python -m alphaswarm.cli runs list --limit N` | the common diagnostics |
| celery-inspect | `celery -A APP inspect active` (or `ping`) | C's probe, in a worker pod |
| redis-cli | `redis-cli ping`, `dbsize`, `llen KEY` | C's depth without a broker, F's data check |
| psql-select | `psql [-U USER] [-d DB] -tAc QUERY` (a `PSQL_QUERIES` one) | F's data check |

A secret (the Redis password, Postgres's optional one) never goes on the argv, which the API
server's audit log, the sandbox's journal and `ExecResult.command` all keep: the command is
wrapped as `sh -c 'IFS= read -r VAR && export VAR && exec "$0" "$@"' PROGRAM ARGS...` and the
secret is written on the exec's stdin, from which the shell puts it in the variable the program
reads (REDISCLI_AUTH for redis-cli, PGPASSWORD for psql). `ExecCommand.stdin` holds it as a
SecretStr, so it is not in a repr or a log line either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from tasks.adapters.errors import PermanentError

# The runbook's own count, F's data marker for Postgres.
TERRAFORM_RUNS_COUNT = "select count(*) from terraform_runs"
PSQL_QUERIES = frozenset({TERRAFORM_RUNS_COUNT})

REDIS_PASSWORD_VARIABLE = "REDISCLI_AUTH"
POSTGRES_PASSWORD_VARIABLE = "PGPASSWORD"
_SECRET_VARIABLES = {"redis-cli": REDIS_PASSWORD_VARIABLE, "psql": POSTGRES_PASSWORD_VARIABLE}


def secret_on_stdin(variable: str) -> str:
    """The shell script that reads one line of stdin into `variable` and runs the command."""
    return f'IFS= read -r {variable} && export {variable} && exec "$0" "$@"'


_URL = re.compile(r"https?://[^\s'\"`$\\]+")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.$-]*")
CeleryInspect = Literal["active", "ping"]


class ExecCommand(BaseModel):
    """One declared command: its name, the argv sent, and a secret for its stdin (if any)."""

    model_config = ConfigDict(frozen=True)

    name: str
    argv: tuple[str, ...]
    stdin: SecretStr | None = None

    @property
    def program_argv(self) -> tuple[str, ...]:
        """The program and its arguments, without the wrapper that reads a secret from stdin."""
        return self.argv[3:] if self.argv[:1] == ("sh",) else self.argv

    def shown(self) -> str:
        """The command as an evidence line shows it; a secret on stdin is only mentioned."""
        text = " ".join(self.program_argv)
        return f"{text} (password on stdin)" if self.stdin is not None else text


def _with_secret(name: str, argv: tuple[str, ...], secret: SecretStr | None) -> ExecCommand:
    if secret is None or not secret.get_secret_value():
        return ExecCommand(name=name, argv=argv)
    wrapped = ("sh", "-c", secret_on_stdin(_SECRET_VARIABLES[argv[0]]), *argv)
    return ExecCommand(name=name, argv=wrapped, stdin=secret)


# -- the builders ------------------------------------------------------------------------------


def curl_jwks(url: str) -> ExecCommand:
    if not _URL.fullmatch(url):
        raise PermanentError(f"not an http(s) URL to curl: {url!r}")
    return ExecCommand(name="curl-jwks", argv=("curl", "-fsS", url))


def runs_list(limit: int = 20) -> ExecCommand:
    return ExecCommand(
        name="runs-list",
        argv=("python", "-m", "alphaswarm.cli", "runs", "list", "--limit", str(int(limit))),
    )


def celery_inspect(app: str, what: CeleryInspect = "active") -> ExecCommand:
    if not _MODULE.fullmatch(app):
        raise PermanentError(f"not a Celery app name: {app!r}")
    return ExecCommand(name="celery-inspect", argv=("celery", "-A", app, "inspect", what))


def redis_cli(
    command: Literal["ping", "dbsize"] | tuple[Literal["llen"], str],
    password: SecretStr | None = None,
) -> ExecCommand:
    words = (command,) if isinstance(command, str) else command
    return _with_secret("redis-cli", ("redis-cli", *words), password)


def psql_select(
    query: str,
    *,
    user: str | None = None,
    database: str | None = None,
    password: SecretStr | None = None,
) -> ExecCommand:
    """`psql -tAc QUERY` over the pod's local socket, as `user` on `database` (unset: psql's
    defaults, the OS user, which the official image's root is not)."""
    if query not in PSQL_QUERIES:
        raise PermanentError(f"not a declared query: {query!r}")
    argv: tuple[str, ...] = ("psql",)
    for flag, value in (("-U", user), ("-d", database)):
        if value:
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentError(f"not a Postgres name: {value!r}")
            argv += (flag, value)
    return _with_secret("psql-select", (*argv, "-tAc", query), password)


# -- recognising an argv -----------------------------------------------------------------------


def _curl(argv: Sequence[str]) -> bool:
    return len(argv) == 3 and tuple(argv[:2]) == ("curl", "-fsS") and bool(_URL.fullmatch(argv[2]))


def _runs(argv: Sequence[str]) -> bool:
    prefix = ("python", "-m", "alphaswarm.cli", "runs", "list", "--limit")
    return len(argv) == 7 and tuple(argv[:6]) == prefix and argv[6].isdigit()


def _celery(argv: Sequence[str]) -> bool:
    return (
        len(argv) == 5
        and tuple(argv[:2]) == ("celery", "-A")
        and bool(_MODULE.fullmatch(argv[2]))
        and argv[3] == "inspect"
        and argv[4] in ("active", "ping")
    )


def _redis(argv: Sequence[str]) -> bool:
    words = tuple(argv[1:])
    return argv[:1] == ["redis-cli"] and (
        words in (("ping",), ("dbsize",)) or (len(words) == 2 and words[0] == "llen")
    )


def _psql(argv: Sequence[str]) -> bool:
    if argv[:1] != ["psql"] or len(argv) < 3 or tuple(argv[-2:-1]) != ("-tAc",):
        return False
    options = list(argv[1:-2])
    for flag in ("-U", "-d"):
        if options[:1] == [flag]:
            if len(options) < 2 or not _IDENTIFIER.fullmatch(options[1]):
                return False
            options = options[2:]
    return not options and argv[-1] in PSQL_QUERIES


_RECOGNISERS: tuple[tuple[str, Callable[[Sequence[str]], bool]], ...] = (
    ("curl-jwks", _curl),
    ("runs-list", _runs),
    ("celery-inspect", _celery),
    ("redis-cli", _redis),
    ("psql-select", _psql),
)


def declared(argv: Sequence[str]) -> str | None:
    """The name of the declared command `argv` is (as a builder makes it), None when it is not
    one: what the adapter refuses to send, and what the journal check reports."""
    argv = list(argv)
    if argv[:2] == ["sh", "-c"] and len(argv) > 3:
        inner = argv[3:]
        variable = _SECRET_VARIABLES.get(inner[0])
        if variable is None or argv[2] != secret_on_stdin(variable):
            return None
        argv = inner
    return next((name for name, matches in _RECOGNISERS if matches(argv)), None)


def require_declared(command: ExecCommand) -> None:
    """PermanentError unless `command` is a declared one under its own name."""
    found = declared(command.argv)
    if found is None or found != command.name:
        raise PermanentError(
            f"refusing to exec {' '.join(command.program_argv)!r}: not one of the declared "
            "read-only commands (tasks/adapters/exec_commands.py)",
            operation="exec",
        )
    if command.stdin is not None and command.argv[:1] != ("sh",):
        raise PermanentError("a secret for stdin needs its sh wrapper", operation="exec")
