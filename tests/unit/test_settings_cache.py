"""`tasks.connection.settings()` reads `Settings()` once per process while what it is read from
stays the same, and again as soon as a REMEDIATE_* variable or a mounted secrets file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks import connection
from tasks.settings import SECRETS_DIR_VARIABLE


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache and no REMEDIATE_* variable: a session fixture of another module on the
    same worker may have pointed the process at a sandbox (its Redis password among them), and
    a variable outranks a secrets file."""
    monkeypatch.setattr(connection, "_settings", None)
    for name in [n for n in os.environ if n.upper().startswith("REMEDIATE_")]:
        monkeypatch.delenv(name)


def test_the_same_environment_reads_the_settings_once() -> None:
    assert connection.settings() is connection.settings()


def test_a_changed_variable_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_KUBE__REQUEST_TIMEOUT_SECONDS", "3")
    first = connection.settings()
    assert first.kube.request_timeout_seconds == 3
    monkeypatch.setenv("REMEDIATE_KUBE__REQUEST_TIMEOUT_SECONDS", "4")
    assert connection.settings().kube.request_timeout_seconds == 4
    monkeypatch.delenv("REMEDIATE_KUBE__REQUEST_TIMEOUT_SECONDS")
    assert connection.settings().kube.request_timeout_seconds == 10.0


def test_a_variable_in_another_case_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    first = connection.settings()
    monkeypatch.setenv("remediate_workloads__namespace", "elsewhere")
    assert connection.settings() is not first
    assert connection.settings().workloads.namespace == "elsewhere"


def test_another_variable_keeps_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    first = connection.settings()
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    assert connection.settings() is first


def test_a_changed_secrets_file_is_seen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "REMEDIATE_CONTROL_PLANE__TOKEN"
    token.write_text("first\n")
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path))
    first = connection.settings()
    assert first.control_plane.token.get_secret_value() == "first"
    assert connection.settings() is first
    token.write_text("second\n")
    stat = token.stat()  # a write within the clock's tick: the mtime moves all the same
    os.utime(token, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert connection.settings().control_plane.token.get_secret_value() == "second"


def test_a_new_secrets_file_is_seen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path))
    assert connection.settings().redis.password.get_secret_value() == ""
    (tmp_path / "REMEDIATE_REDIS__PASSWORD").write_text("s3cret")
    assert connection.settings().redis.password.get_secret_value() == "s3cret"


def test_a_missing_secrets_folder_still_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path / "not-mounted"))
    with pytest.raises(Exception, match="not-mounted"):
        connection.settings()
