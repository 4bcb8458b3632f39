"""SQLite's one write lock, as the store takes it (store/engine.py `_sqlite_begin`): a writer
waits while another holds it and goes on once it is released; past the busy timeout it fails
with a StoreError; and the connection keeps SQLite's own busy timeout for every other
statement."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from store import engine as store_engine
from store.engine import StoreError, session_for


@contextmanager
def write_lock_held(url: str) -> Iterator[threading.Event]:
    """Another process's writer, holding the lock until the event is set."""
    write(url, [])  # the store's first connection puts the file in WAL mode, as in operation
    release, taken = threading.Event(), threading.Event()

    def hold() -> None:
        other = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        taken.set()
        release.wait(30)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join()


def write(url: str, events: list[str]) -> None:
    with session_for(url) as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS lock_probe (x INTEGER)"))
        events.append("written")


def test_a_writer_waits_for_the_lock_and_writes_once_it_is_released(incident_store: str) -> None:
    events: list[str] = []
    with write_lock_held(incident_store) as release:
        writer = threading.Thread(target=write, args=(incident_store, events))
        writer.start()
        writer.join(0.3)
        assert events == []  # still waiting
        events.append("released")
        release.set()
        writer.join(10)

    assert events == ["released", "written"]


def test_past_the_busy_timeout_it_fails_with_a_store_error(
    incident_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with write_lock_held(incident_store):
        monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.2)
        with pytest.raises(StoreError, match="locked"):
            write(incident_store, [])


def test_every_other_statement_keeps_sqlites_busy_timeout(incident_store: str) -> None:
    write(incident_store, [])
    with session_for(incident_store) as session:
        timeout = session.execute(text("PRAGMA busy_timeout")).scalar_one()
    assert timeout == store_engine.SQLITE_BUSY_TIMEOUT_SECONDS * 1000


def test_a_reader_reads_while_a_writer_holds_the_lock(
    incident_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with write_lock_held(incident_store):
        monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.2)
        with session_for(incident_store, read_only=True) as session:
            tables = session.execute(text("SELECT count(*) FROM sqlite_master")).scalar_one()
    assert tables > 0
