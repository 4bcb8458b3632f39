"""SQLite's one write lock, as the store takes it (store/engine.py `_sqlite_begin`): a writer
waits while another holds it and goes on once it is released; past the busy timeout it fails
with a StoreError; and the connection keeps SQLite's own busy timeout for every other
statement; a unit of work with a `lock_wait` gives up past it, having written nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from store import engine as store_engine
from store.engine import StoreError, WriteLockBusy, session_for


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


def write_within(url: str, lock_wait: float) -> None:
    with session_for(url, lock_wait=lock_wait) as session:
        session.execute(text("CREATE TABLE lock_wait_probe (x INTEGER)"))


@pytest.mark.parametrize("lock_wait", [0, 0.2])
def test_a_writer_with_a_lock_wait_gives_up_past_it_and_writes_nothing(
    incident_store: str, lock_wait: float
) -> None:
    with write_lock_held(incident_store):
        began = time.monotonic()
        with pytest.raises(WriteLockBusy, match="another writer holds the store"):
            write_within(incident_store, lock_wait)
        waited = time.monotonic() - began
    assert lock_wait <= waited < lock_wait + 1  # not SQLite's 30 s busy timeout
    with session_for(incident_store, read_only=True) as session:
        probe = "SELECT count(*) FROM sqlite_master WHERE name = 'lock_wait_probe'"
        assert session.execute(text(probe)).scalar_one() == 0
    write_within(incident_store, 0)  # the lock is free: taken at once
