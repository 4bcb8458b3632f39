"""The intake's work after the answer, each in a thread of its own: the outbox creates the owed
triage runs, the copy writer adds the copies answered without the write lock to their
receipts, and retention deletes the receipts and delivered outbox rows past
REMEDIATE_INTAKE__RETENTION_DAYS."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from deployments.intake.metrics import IntakeMetrics
from tasks.settings import Settings
from tasks.triggers import outbox
from tasks.triggers.copies import FLUSH_SECONDS, Copies
from tasks.triggers.intake import purge_expired

log = logging.getLogger("remediate.intake")

DISPATCH_POLL_SECONDS = 1.0
RETENTION_POLL_SECONDS = 3600.0


class Chore:
    """`round()` every `poll_seconds`, and at once when woken. An error ends the round, not the
    thread: it is logged and kept in `last_error` until a round goes well."""

    name = "chore"

    def __init__(self, poll_seconds: float):
        self._poll = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self.last_error = ""

    def round(self) -> None:
        raise NotImplementedError

    def last_round(self) -> None:
        """At stop: nothing by default."""

    def start(self) -> Chore:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            self._guarded(self.round)
        self._guarded(self.last_round)

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # the store or Prefect is down: try again next round
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s: %s", self.name, self.last_error)


class OutboxDispatcher(Chore):
    """Creates the owed triage runs: woken by each payload that owes one, and every
    DISPATCH_POLL_SECONDS for the rows that wait on a Prefect that was down."""

    name = "outbox"

    def __init__(self, metrics: IntakeMetrics, poll_seconds: float = DISPATCH_POLL_SECONDS):
        super().__init__(poll_seconds)
        self._metrics = metrics

    def round(self) -> None:
        delivery = outbox.deliver_pending()
        self._metrics.runs_started.inc(len(delivery.started))
        if delivery.failed:
            self.last_error = delivery.error
        elif delivery.started:
            self.last_error = ""


class CopyWriter(Chore):
    """Writes the copies counted every FLUSH_SECONDS, and once more at stop."""

    name = "copies"

    def __init__(self, copies: Copies, poll_seconds: float = FLUSH_SECONDS):
        super().__init__(poll_seconds)
        self._copies = copies

    def round(self) -> None:
        self._copies.flush()

    def last_round(self) -> None:
        self._copies.flush()  # what it holds is written before the intake stops


class Retention(Chore):
    """Deletes what is past retention (`purge_expired`): once at start, then every
    RETENTION_POLL_SECONDS. Two replicas doing it too is harmless: a row is deleted once."""

    name = "retention"

    def __init__(self, settings: Settings, poll_seconds: float = RETENTION_POLL_SECONDS):
        super().__init__(poll_seconds)
        self._settings = settings
        self.last_purged: tuple[int, int] | None = None  # (receipts, outbox rows), last round

    def start(self) -> Chore:
        self.wake()  # the first round at once, not an hour after start
        return super().start()

    def round(self) -> None:
        purged = purge_expired(self._settings)
        self.last_purged = (purged.receipts, purged.outbox)
        if purged.receipts or purged.outbox:
            log.info(
                "retention: deleted %d alert receipt(s) and %d delivered outbox row(s) older "
                "than %s day(s)",
                purged.receipts,
                purged.outbox,
                self._settings.intake.retention_days,
            )
