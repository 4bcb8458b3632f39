"""One engine per database URL and process, checked against the migrations once.

SQLite is the embedded default (a file under var/); PostgreSQL is production, through the same
URL setting (`postgresql+psycopg://...`). SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE`,
because the served deployments run each flow in its own process and they all write one file: a
transaction that read first and writes second would otherwise fail at once with "database is
locked" whenever another writer committed in between (the busy timeout does not cover that
upgrade), which is exactly two triage runs opening the same incident.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from store.schema import check_migrated

SQLITE_BUSY_TIMEOUT_SECONDS = 30
SQLITE_POLL_SECONDS = 0.001
SQLITE_SYNCHRONOUS = "FULL"  # every commit durable; see _sqlite_connect
READ_ONLY = "remediate_read_only"  # an execution option: the unit of work only reads
LOCK_WAIT = "remediate_lock_wait"  # an execution option: seconds to wait for the write lock
# An execution option: False when the unit of work need not survive power loss on its own (on
# SQLite it commits with synchronous=NORMAL: no fsync; the next durable commit fsyncs it too).
DURABLE = "remediate_durable"
_SYNCHRONOUS = "remediate_synchronous"  # the level a pooled SQLite connection is at now

# What a caller catches when the database cannot do its part (unreachable, locked, refused).
StoreError = SQLAlchemyError


class WriteLockBusy(StoreError):
    """Another connection held SQLite's write lock longer than the unit of work would wait
    (`session_for(lock_wait=...)`): nothing was done, and it may be tried again."""


_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def shown(url: str) -> str:
    """The URL as it may be printed: never with its password."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_connect(connection: Any, _record: Any) -> None:
    connection.isolation_level = None  # the driver's own BEGIN is replaced by _sqlite_begin
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk (the WAL fsynced) before it returns, so an alert the intake
    # acknowledged (200) survives power loss and an OS crash, not only a killed process as with
    # NORMAL. The cost is one fsync per write transaction; the intake answers copies (most of a
    # storm) without one and counts them once a second, so a storm pays it per new alert only
    # (bench/intake_storm.py; README "The Alertmanager intake").
    cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    _record.info[_SYNCHRONOUS] = SQLITE_SYNCHRONOUS


def _sqlite_begin(connection: Any) -> None:
    """Take the write lock, polling for it every millisecond while another writer holds it, up
    to the unit of work's `lock_wait` (WriteLockBusy past it); a reader
    (`session_for(read_only=True)`) takes none: in WAL it reads a snapshot, and writers go on
    meanwhile.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and more between its tries, so
    a lock released after 40 ms is taken at 53 ms (bench/sqlite_handoff.py: 12 ms after the
    release at the median, against 0.5 ms polling). The intake's answers queue behind its
    transactions: under an alert storm that starts runs, every wait of one is theirs too."""
    options = connection.get_execution_options()
    if options.get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    wait = options.get(LOCK_WAIT)
    raw = connection.connection.driver_connection
    # Set outside a transaction (SQLite refuses it inside), for this unit of work: a durable
    # one puts back FULL after a non-durable one left the pooled connection at NORMAL.
    level = SQLITE_SYNCHRONOUS if options.get(DURABLE, True) else "NORMAL"
    info = connection.connection.info
    if info.get(_SYNCHRONOUS) != level:
        raw.execute(f"PRAGMA synchronous={level}")
        info[_SYNCHRONOUS] = level
    raw.execute("PRAGMA busy_timeout = 0")
    deadline = time.monotonic() + (SQLITE_BUSY_TIMEOUT_SECONDS if wait is None else wait)
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    break
            if time.monotonic() >= deadline:
                if wait is not None:
                    raise WriteLockBusy(f"another writer holds the store (waited {wait} s)")
                break
            time.sleep(SQLITE_POLL_SECONDS)
        # The last try through SQLAlchemy: its error is a StoreError, as any other statement's.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_BUSY" or "locked" in str(exc)


def create(url: str) -> Engine:
    """A new engine for `url`, unchecked (migrations and tests use this directly)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def engine_for(url: str) -> Engine:
    """The process's engine for `url`; StoreNotMigrated if the schema is not this code's."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create(url)
            try:
                check_migrated(engine.execution_options(**{READ_ONLY: True}), shown(url))
            except BaseException:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


@contextmanager
def session_for(
    url: str, *, read_only: bool = False, lock_wait: float | None = None, durable: bool = True
) -> Iterator[Session]:
    """A unit of work: committed when the block ends, rolled back when it raises. `read_only`:
    it only reads, and on SQLite it does not hold up the writers. `lock_wait`: on SQLite, the
    seconds to wait for the write lock before WriteLockBusy (0: take it now or not at all);
    None waits SQLITE_BUSY_TIMEOUT_SECONDS. `durable=False`: on SQLite the commit is not
    fsynced (a killed process still loses nothing; power loss may lose it until the next
    durable commit): only for what no one needs after every process is gone (a lease)."""
    engine = engine_for(url)
    options: dict[str, object] = {READ_ONLY: True} if read_only else {}
    if lock_wait is not None:
        options[LOCK_WAIT] = lock_wait
    if not durable:
        options[DURABLE] = False
    bind = engine.execution_options(**options) if options else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def dispose_all() -> None:
    """Close every pooled connection (tests, and before a process forks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
