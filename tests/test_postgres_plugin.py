"""The PostgreSQL plumbing the store's tests stand on: a real 15.x server, and databases that are
private to one test, empty, and gone afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import sqlalchemy

from sandbox.processes import owned_processes
from tests.postgres_plugin import fresh_database
from tests.postgres_server import (
    PostgresNotInstalledError,
    PostgresServer,
    libpq_url,
    redact,
    sqlalchemy_url,
    with_database,
)


def _database_exists(server_url: str, name: str) -> bool:
    with psycopg.connect(libpq_url(server_url)) as conn:
        row = conn.execute("select count(*) from pg_database where datname = %s", [name]).fetchone()
        assert row is not None
        return bool(row[0])


def _user_tables(url: str) -> list[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema not in ('pg_catalog', 'information_schema')"
        ).fetchall()
        return [r[0] for r in rows]


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_the_server_is_postgresql_15(postgres_server_url: str) -> None:
    with psycopg.connect(libpq_url(postgres_server_url)) as conn:
        row = conn.execute("select version(), current_setting('server_version_num')").fetchone()
    assert row is not None
    version, number = row
    assert version.startswith("PostgreSQL 15."), version
    assert int(number) // 10000 == 15


def test_the_url_works_with_sqlalchemy_and_psycopg(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.driver == "psycopg"
            assert conn.execute(sqlalchemy.text("select current_database()")).scalar_one() == (
                _dbname(postgres_url)
            )
    finally:
        engine.dispose()


def test_fresh_databases_are_distinct_empty_and_dropped(postgres_server_url: str) -> None:
    with fresh_database(postgres_server_url) as a, fresh_database(postgres_server_url) as b:
        assert a != b
        assert _dbname(a) != _dbname(b)
        assert _dbname(a) != _dbname(postgres_server_url)
        for url in (a, b):
            assert _database_exists(postgres_server_url, _dbname(url))
            assert _user_tables(url) == []
    assert not _database_exists(postgres_server_url, _dbname(a))
    assert not _database_exists(postgres_server_url, _dbname(b))


def test_a_table_in_one_database_is_absent_in_another(postgres_server_url: str) -> None:
    with fresh_database(postgres_server_url) as a, fresh_database(postgres_server_url) as b:
        with psycopg.connect(libpq_url(a)) as conn:
            conn.execute("create table incident (id serial primary key, title text not null)")
            conn.execute("insert into incident (title) values ('ingress down')")
        assert _user_tables(a) == ["public.incident"]
        assert _user_tables(b) == []
        with psycopg.connect(libpq_url(b)) as conn:
            row = conn.execute("select to_regclass('public.incident')").fetchone()
            assert row == (None,)


def test_a_database_is_dropped_even_with_a_connection_left_open(postgres_server_url: str) -> None:
    """A test that forgets to dispose of its engine must not leave its database behind."""
    leftover: psycopg.Connection[tuple[object, ...]] | None = None
    try:
        with fresh_database(postgres_server_url) as url:
            leftover = psycopg.connect(libpq_url(url))
        assert not _database_exists(postgres_server_url, _dbname(url))
        with pytest.raises(psycopg.OperationalError):
            leftover.execute("select 1")
    finally:
        if leftover is not None:
            leftover.close()


def test_the_fixture_gives_each_test_an_empty_database(postgres_url: str) -> None:
    assert _user_tables(postgres_url) == []
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        conn.execute("create table marker (id int)")  # the next test's database must not see it


def test_the_fixture_database_of_another_test_is_empty_too(postgres_url: str) -> None:
    assert _user_tables(postgres_url) == []


def test_a_private_server_starts_and_stops_without_leftovers() -> None:
    """The throwaway server, exercised even where the session uses CI's server instead."""
    server = PostgresServer()
    with server:
        assert server.running
        data_dir = server.data_dir
        assert data_dir.is_dir()
        with psycopg.connect(libpq_url(server.url)) as conn:
            assert conn.execute("show fsync").fetchone() == ("off",)
            assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
            if os.geteuid() == 0:
                assert conn.execute("select current_setting('data_directory')").fetchone() == (
                    str(data_dir),
                )
        with fresh_database(server.url) as url:
            assert _user_tables(url) == []
        pid = server._proc.pid if server._proc else 0
        assert pid in owned_processes()
    assert not server.running
    assert pid not in owned_processes()
    assert not data_dir.parent.exists()


def test_missing_binaries_are_an_error_that_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotInstalledError, match="apt-get install -y postgresql"):
        PostgresServer(bindir=tmp_path).start()


def test_urls_name_the_psycopg_driver_and_hide_passwords() -> None:
    assert sqlalchemy_url("postgres://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert sqlalchemy_url("postgresql+psycopg://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert libpq_url("postgresql+psycopg://u@h:1/d?sslmode=disable") == (
        "postgresql://u@h:1/d?sslmode=disable"
    )
    assert with_database("postgresql+psycopg://u@h:1/postgres?x=1", "t") == (
        "postgresql+psycopg://u@h:1/t?x=1"
    )
    assert redact("postgresql+psycopg://u:secret@h:1/d") == "postgresql+psycopg://u:***@h:1/d"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        sqlalchemy_url("sqlite:///x.db")
