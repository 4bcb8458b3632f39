"""An alert the intake acknowledged survives power loss (issue 21, point 10): on SQLite every
connection of the store commits with synchronous=FULL (the WAL fsynced before COMMIT returns),
not NORMAL, which survives a killed process but may lose the last commits to an OS crash."""

from __future__ import annotations

from sqlalchemy import text

from store.engine import session_for

NORMAL, FULL = 1, 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_the_stores_writes_are_fsynced_before_they_return(incident_store: str) -> None:
    with session_for(incident_store) as session:  # a writer, as the intake's store() is
        connection = session.connection()
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == FULL
    with session_for(incident_store, lock_wait=0) as session:  # the intake's first try
        assert session.connection().execute(text("PRAGMA synchronous")).scalar() == FULL


def test_only_a_unit_of_work_said_not_durable_skips_the_fsync(incident_store: str) -> None:
    # A lease (tasks/changes/guards.py) need not survive power loss on its own: its unit of work
    # commits with NORMAL; the next one on the same pooled connection is FULL again.
    for durable, level in ((False, NORMAL), (True, FULL), (False, NORMAL), (True, FULL)):
        with session_for(incident_store, durable=durable) as session:
            assert session.connection().execute(text("PRAGMA synchronous")).scalar() == level
