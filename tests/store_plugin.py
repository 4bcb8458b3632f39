"""The incident store for tests: a migrated SQLite file per test (copied from one migrated
template, so a test pays a file copy, not a migration), or a fresh PostgreSQL database on the
real server of tests/postgres_plugin.py.

`incident_store` is what flows and the CLI use (it sets REMEDIATE_STORE__URL and the reports
folder); a test module that must pass on both backends overrides it with `store_backends`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.engine import dispose_all
from store.schema import upgrade
from tests.postgres_plugin import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store-template") / "incidents.db"
    upgrade(f"sqlite:///{path}")
    dispose_all()
    return path


def sqlite_store(template: Path, folder: Path) -> str:
    path = folder / "incidents.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


# The sandbox moves in fractions of a second: a verified fix has held after half a second.
TEST_HOLD_SECONDS = "0.5"


def _use(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("REMEDIATE_STORE__URL", url)
    monkeypatch.setenv("REMEDIATE_INCIDENTS__REPORTS_DIR", str(tmp_path / "incidents"))
    monkeypatch.setenv("REMEDIATE_INCIDENTS__HOLD_SECONDS", TEST_HOLD_SECONDS)
    try:
        yield url
    finally:
        dispose_all()


@pytest.fixture
def incident_store(
    _sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated SQLite store for this test; its URL."""
    yield from _use(sqlite_store(_sqlite_template, tmp_path), tmp_path, monkeypatch)


@pytest.fixture(params=BACKENDS)
def any_store(
    request: pytest.FixtureRequest,
    _sqlite_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The same test on SQLite and on PostgreSQL (a fresh, migrated database on a real server)."""
    if request.param == "sqlite":
        yield from _use(sqlite_store(_sqlite_template, tmp_path), tmp_path, monkeypatch)
        return
    server: str = request.getfixturevalue("postgres_server_url")
    with fresh_database(server) as url:
        upgrade(url)
        yield from _use(url, tmp_path, monkeypatch)
