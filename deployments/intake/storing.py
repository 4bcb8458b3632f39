"""How the intake stores a payload before it answers, cheapest way first.

    every alert stored before (a retry, the other replica's copy, a group re-sent)
        └─ answered from memory or one read, on the event loop: no lock (tasks/triggers/copies.py)
    a new alert, SQLite's write lock free now
        └─ written on the event loop itself
    a new alert, the lock held (a starting run records), or writes already waiting
        └─ written from the writer thread, in arrival order; the copies keep being answered

Why not every write from a thread: the sqlite3 module lets go of the GIL for each statement,
and a thread that wants it back waits for the event loop's switch interval (5 ms) while the loop
answers copies. A 20-statement write took 30 to 90 ms instead of 8, and the copies of its
alerts waited that long too. Why not every write on the loop: while a run holds the lock, every
answer would wait for it. On PostgreSQL, a server across the network, the copies and the writes
are all done from a pool of threads, side by side: a slow or unreachable database never holds up
the event loop (`/healthz` answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from store.engine import WriteLockBusy
from tasks.models.alerts import AlertBatch
from tasks.settings import Settings
from tasks.triggers.copies import Copies, receive_copies, remember_received
from tasks.triggers.intake import Receipt, receive, rehearse

POSTGRES_WRITERS = 8


class PayloadStore:
    """The intake's way to store a payload (`store`), and what it remembers (`copies`)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        url = settings.store.url.get_secret_value()
        self._sqlite = url.startswith("sqlite")
        self._writers = ThreadPoolExecutor(
            max_workers=1 if self._sqlite else POSTGRES_WRITERS, thread_name_prefix="intake-store"
        )
        self._waiting = 0  # writes handed to the writers and not done (the event loop's count)
        self.copies = Copies(url)

    def rehearse(self) -> None:
        """Compile the write path's statements before the first alert (SQLite)."""
        rehearse(self._settings)

    async def store(self, batch: AlertBatch) -> Receipt:
        """The payload stored (StoreError, StoreNotMigrated: it is not)."""
        if not self._sqlite:  # a database across the network: never waited for on the loop
            return await self._in_thread(self._copies_or_write, batch)
        answer = receive_copies(batch, self.copies)
        if answer is not None:
            return answer
        if not self._waiting:
            try:
                return self._write(batch, lock_wait=0)
            except WriteLockBusy:
                pass  # nothing was written: the writer thread waits for the lock
        return await self._in_thread(self._write, batch)

    async def _in_thread(self, work: Callable[[AlertBatch], Receipt], batch: AlertBatch) -> Receipt:
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writers, work, batch)
        finally:
            self._waiting -= 1

    def _copies_or_write(self, batch: AlertBatch) -> Receipt:
        answer = receive_copies(batch, self.copies)
        return answer if answer is not None else self._write(batch)

    def _write(self, batch: AlertBatch, lock_wait: float | None = None) -> Receipt:
        receipt = receive(batch, settings=self._settings, lock_wait=lock_wait)
        remember_received(batch, self.copies)
        return receipt

    def close(self) -> None:
        self._writers.shutdown(wait=True)
