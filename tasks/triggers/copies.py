"""Copies answered without the write lock: under an alert storm nearly every delivery is one.

Alertmanager's HA replicas each send every notification, it retries, and every group_interval
re-sends the whole group: most payloads hold only alerts stored before. `receive_copies` tells
them from what this intake stored or read before (receipts are never deleted), else from one
read that takes no lock (in SQLite's WAL a reader never waits for a writer); `Copies.flush`
adds them to their receipts' `copies` in one write a second, off the answer's path. Before,
each copy was an UPDATE in a write transaction, queued behind the starting runs' records.

The price: `alert_receipt.copies` trails the answers by up to a second, and a killed intake
loses the copies it had not written yet. Never an alert: a payload with a single new alert takes
the write path (`intake.receive`), whole.
"""

from __future__ import annotations

import threading
from collections import Counter
from itertools import islice

from store import intake as ledger
from store.engine import session_for
from tasks.models.alerts import AlertBatch
from tasks.triggers.intake import Receipt, identity

FLUSH_SECONDS = 1.0
REMEMBERED = 100_000  # identities known stored; the oldest half is forgotten past this


class Copies:
    """Which alerts are known stored, and the copies seen of them not yet written."""

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.Lock()
        self._stored: dict[ledger.Identity, None] = {}  # insertion-ordered: oldest first
        self._seen: Counter[ledger.Identity] = Counter()

    def known(self, identities: list[ledger.Identity]) -> bool:
        stored = self._stored
        return all(i in stored for i in identities)

    def remember(self, identities: list[ledger.Identity]) -> None:
        """These are committed to the store (written or read back)."""
        with self._lock:
            self._stored.update(dict.fromkeys(identities))
            if len(self._stored) > REMEMBERED:
                for old in list(islice(self._stored, REMEMBERED // 2)):
                    del self._stored[old]

    def count(self, identities: list[ledger.Identity]) -> None:
        with self._lock:
            self._seen.update(identities)

    def pending(self) -> int:
        """Copies counted and not written yet."""
        with self._lock:
            return self._seen.total()

    def flush(self) -> int:
        """Write the copies counted so far; on a store error they are kept for the next try."""
        with self._lock:
            taken, self._seen = self._seen, Counter()
        if not taken:
            return 0
        try:
            with session_for(self.url) as session:
                ledger.count_copies(session, taken)
        except BaseException:
            self.count(list(taken.elements()))
            raise
        return taken.total()


def receive_copies(batch: AlertBatch, copies: Copies) -> Receipt | None:
    """The payload's answer when every alert in it was stored before, counted in `copies`;
    None when one is new (or the batch is empty): `intake.receive` stores it."""
    identities = [identity(alert) for alert in batch.alerts]
    if not identities:
        return None
    if not copies.known(identities):
        with session_for(copies.url, read_only=True) as session:
            if not ledger.all_stored(session, identities):
                return None
        copies.remember(identities)
    copies.count(identities)
    return Receipt(duplicates=len(identities), truncated=batch.truncated_alerts)


def remember_received(batch: AlertBatch, copies: Copies) -> None:
    """`intake.receive` stored the payload: each of its alerts is stored now."""
    copies.remember([identity(alert) for alert in batch.alerts])
