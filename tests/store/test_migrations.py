"""The schema comes from Alembic migrations only, they build exactly the tables the models
declare (on SQLite and PostgreSQL), and an unmigrated database is refused with what to run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

import store.models  # noqa: F401  (the tables, on SQLModel.metadata)
from store.engine import create, dispose_all, engine_for, shown
from store.schema import StoreNotMigrated, current_revision, head_revision, upgrade
from tests.postgres_plugin import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: no tables, no revision."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
    else:
        with fresh_database(request.getfixturevalue("postgres_server_url")) as url:
            yield url
    dispose_all()


def test_the_migrations_build_exactly_the_models_tables(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create(empty_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_an_unmigrated_store_is_refused_naming_the_command(empty_url: str) -> None:
    with pytest.raises(
        StoreNotMigrated, match=r"has no incident tables yet: run `remediate db upgrade`"
    ):
        engine_for(empty_url)
    upgrade(empty_url)
    assert engine_for(empty_url) is engine_for(empty_url)  # checked once, then reused


def test_a_store_from_an_unknown_revision_is_refused(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create(empty_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    with pytest.raises(StoreNotMigrated, match="ffff, which this version does not know"):
        engine_for(empty_url)


def test_upgrading_twice_changes_nothing(empty_url: str) -> None:
    upgrade(empty_url)
    upgrade(empty_url)
    engine = create(empty_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_shown_url_hides_the_password() -> None:
    url = "postgresql+psycopg://remediate:s3cret@127.0.0.1:1/none"
    assert "s3cret" not in shown(url) and "***" in shown(url)


def test_a_new_sqlite_store_is_in_wal_mode_from_its_migration(tmp_path: Path) -> None:
    """Set at the first runtime connection instead, `PRAGMA journal_mode=WAL` failed at once
    ("database is locked") whenever another process held a lock on the new file then."""
    path = tmp_path / "new.db"
    upgrade(f"sqlite:///{path}")
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()
