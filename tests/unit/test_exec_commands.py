"""The declared exec commands (tasks/adapters/exec_commands.py): every builder's argv is
recognised under its own name, nothing else is, and a secret never reaches an argv or a repr."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import (
    TERRAFORM_RUNS_COUNT,
    ExecCommand,
    celery_inspect,
    curl_jwks,
    declared,
    psql_select,
    redis_cli,
    require_declared,
    runs_list,
    secret_on_stdin,
)

SECRET = SecretStr("s3cret-pa55")

BUILT = [
    curl_jwks("https://tenant.us.auth0.com/.well-known/jwks.json"),
    curl_jwks("http://127.0.0.1:8080/.well-known/jwks.json"),
    runs_list(20),
    celery_inspect("alphaswarm.tasks.celery_app", "active"),
    celery_inspect("proj.celery:app", "ping"),
    redis_cli("ping"),
    redis_cli("dbsize", SECRET),
    redis_cli(("llen", "celery\x06\x163"), SECRET),
    psql_select(TERRAFORM_RUNS_COUNT),
    psql_select(TERRAFORM_RUNS_COUNT, user="alphaswarm", database="alphaswarm"),
    psql_select(TERRAFORM_RUNS_COUNT, user="app", database="app", password=SECRET),
]


@pytest.mark.parametrize("command", BUILT, ids=lambda c: c.shown())
def test_every_builder_makes_a_declared_command(command: ExecCommand) -> None:
    assert declared(command.argv) == command.name
    require_declared(command)
    assert SECRET.get_secret_value() not in " ".join(command.argv)
    assert SECRET.get_secret_value() not in repr(command) + command.shown()


def test_a_password_goes_on_stdin_behind_the_one_shell_script() -> None:
    command = redis_cli("dbsize", SECRET)
    assert command.argv == ("sh", "-c", secret_on_stdin("REDISCLI_AUTH"), "redis-cli", "dbsize")
    assert command.stdin == SECRET and command.shown() == "redis-cli dbsize (password on stdin)"
    pg = psql_select(TERRAFORM_RUNS_COUNT, user="u", database="d", password=SECRET)
    assert pg.argv[2] == secret_on_stdin("PGPASSWORD") and pg.program_argv[:5] == (
        "psql",
        "-U",
        "u",
        "-d",
        "d",
    )
    # No password, no wrapper: the plain command.
    assert redis_cli("dbsize", SecretStr("")).argv == ("redis-cli", "dbsize")


@pytest.mark.parametrize(
    "argv",
    [
        ["true"],
        ["hostname"],
        ["sh", "-c", "redis-cli flushall"],
        ["sh", "-c", secret_on_stdin("REDISCLI_AUTH"), "redis-cli", "flushall"],
        ["sh", "-c", secret_on_stdin("PGPASSWORD"), "redis-cli", "ping"],  # the wrong variable
        ["sh", "-c", secret_on_stdin("REDISCLI_AUTH"), "sh", "-c", "id"],
        ["redis-cli", "flushall"],
        ["redis-cli", "-a", "x", "ping"],
        ["redis-cli", "eval", "return 1", "0"],
        ["redis-cli", "llen"],
        ["psql", "-tAc", "delete from terraform_runs"],
        ["psql", "-tAc", "select pg_terminate_backend(1)"],
        ["psql", "-U", "x; drop", "-tAc", TERRAFORM_RUNS_COUNT],
        ["psql", "-h", "evil", "-tAc", TERRAFORM_RUNS_COUNT],
        ["psql", "-c", TERRAFORM_RUNS_COUNT],
        ["celery", "-A", "app", "control", "shutdown"],
        ["celery", "-A", "app", "purge", "-f"],
        ["celery", "-A", "app; id", "inspect", "active"],
        ["curl", "-fsS", "-X", "DELETE", "https://x/y"],
        ["curl", "-fsS", "file:///etc/shadow"],
        ["curl", "-fsS", "https://x/$(id)"],
        ["python", "-m", "alphaswarm.cli", "runs", "delete", "--limit", "1"],
    ],
)
def test_anything_else_is_not_declared(argv: list[str]) -> None:
    assert declared(argv) is None


def test_builders_refuse_what_they_cannot_make_safely() -> None:
    with pytest.raises(PermanentError):
        psql_select("delete from terraform_runs")
    with pytest.raises(PermanentError):
        psql_select(TERRAFORM_RUNS_COUNT, user="x; drop")
    with pytest.raises(PermanentError):
        celery_inspect("app; id")
    with pytest.raises(PermanentError):
        curl_jwks("file:///etc/passwd")
