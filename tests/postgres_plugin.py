"""The real-PostgreSQL fixtures for the incident store's tests: one server per session, and an
empty database of its own for each test. Registered in tests/conftest.py.

CI starts the server itself and names it in REMEDIATE_TEST_POSTGRES_URL; anywhere else the
session starts a private throwaway server (tests/postgres_server.py). A missing PostgreSQL is an
error, never a skip: a skipped store test would pass CI without testing anything.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.postgres_server import PostgresServer, libpq_url, redact, sqlalchemy_url, with_database

# no_orphans, which proves after the session that the server this plugin started is gone.
pytest_plugins = ["tests.celery_plugin"]

URL_ENV = "REMEDIATE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_server_url(no_orphans: None) -> Iterator[str]:
    """SQLAlchemy URL of the maintenance database of a running server (superuser access)."""
    if configured := os.environ.get(URL_ENV):
        url = sqlalchemy_url(configured)
        try:
            with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
                conn.execute("select 1")
        except psycopg.OperationalError as e:
            raise RuntimeError(f"{URL_ENV}={redact(url)} does not accept connections: {e}") from e
        yield url
        return
    with PostgresServer() as server:
        yield server.url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database with a unique name on `server_url`'s server, yield its
    SQLAlchemy URL, and drop it afterwards, whatever connections are still open to it.

    template0 is the copy source: nobody can connect to it, so CREATE DATABASE never fails
    with "source database is being accessed by other users", and nothing a test put into
    template1 leaks into other tests. FILE_COPY (PostgreSQL 15+) copies the files instead of
    WAL-logging every page (15's default): faster here, and the WAL does not grow by the
    template's 8 MB per test.
    """
    name = f"remediate_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    create = "CREATE DATABASE {} TEMPLATE template0 STRATEGY FILE_COPY"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL(create).format(sql.Identifier(name)))
    try:
        yield with_database(sqlalchemy_url(server_url), name)
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """SQLAlchemy URL of an empty database of this test's own, dropped after it."""
    with fresh_database(postgres_server_url) as url:
        yield url
