"""What the intake remembers of the alerts it stored, and the copies it counts before writing
them (tasks/triggers/copies.py): bounded, and never dropped by a store that fails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from store.engine import StoreError
from store.schema import StoreNotMigrated
from tasks.triggers import copies as module
from tasks.triggers.copies import Copies

T0 = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)


def identity(n: int) -> tuple[str, str, datetime]:
    return (f"fp{n}", "firing", T0)


def test_past_its_bound_the_oldest_half_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "REMEMBERED", 10)
    known = Copies("sqlite:///unused.db")
    known.remember([identity(n) for n in range(11)])
    assert not known.known([identity(0)]) and not known.known([identity(4)])
    assert known.known([identity(n) for n in range(5, 11)])


def test_copies_a_store_could_not_take_are_kept_for_the_next_flush(tmp_path: Path) -> None:
    counted = Copies(f"sqlite:///{tmp_path}/unmigrated.db")
    counted.count([identity(1), identity(1), identity(2)])
    with pytest.raises((StoreError, StoreNotMigrated)):
        counted.flush()
    assert counted.pending() == 3
