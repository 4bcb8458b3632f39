"""How soon a writer waiting for SQLite's write lock gets it once the holder commits: the store's
own `BEGIN IMMEDIATE` (store/engine.py, polling every millisecond) beside SQLite's busy handler
(the driver's `timeout`, which sleeps 1, 2, 5, 10, 15, 20, 25 ms and more between tries).

Each round, a thread takes the lock and holds it 5 to 80 ms (what a run's record held it for
while ten runs started on two cores), and the writer asks for it 2 ms later; the figure is the
time from the holder's commit to the writer having the lock. Both ways alternate, round by
round, on the same file (WAL, as the store runs it).

Run: `.venv/bin/python bench/sqlite_handoff.py [--rounds 60]`.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.engine import SQLITE_BUSY_TIMEOUT_SECONDS, create


def hold_for(path: str, seconds: float, taken: threading.Event, released: list[float]) -> None:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    taken.set()
    time.sleep(seconds)
    holder.execute("COMMIT")
    released.append(time.perf_counter())
    holder.close()


def handoff(path: str, seconds: float, take: Callable[[], float]) -> float:
    taken, released = threading.Event(), []
    holder = threading.Thread(target=hold_for, args=(path, seconds, taken, released))
    holder.start()
    taken.wait()
    time.sleep(0.002)
    got = take()
    holder.join()
    return (got - released[0]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    path = str(Path(tempfile.mkdtemp(prefix="sqlite-handoff-")) / "store.db")

    engine = create(f"sqlite:///{path}")  # the store's engine: WAL, and its BEGIN IMMEDIATE
    acquired: list[float] = []
    event.listen(engine, "begin", lambda _: acquired.append(time.perf_counter()))

    def store_begin() -> float:
        with engine.begin() as connection:
            connection.execute(text("SELECT 1"))
        return acquired[-1]

    plain = sqlite3.connect(path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)

    def busy_handler_begin() -> float:
        plain.execute("BEGIN IMMEDIATE")
        got = time.perf_counter()
        plain.execute("COMMIT")
        return got

    store_begin()  # the file in WAL mode, the engine connected
    rng = random.Random(1)
    store, baseline = [], []
    for _ in range(args.rounds):
        seconds = rng.uniform(0.005, 0.08)
        baseline.append(handoff(path, seconds, busy_handler_begin))
        store.append(handoff(path, seconds, store_begin))

    def line(name: str, values: list[float]) -> str:
        values = sorted(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        return (
            f"{name:<34} p50 {statistics.median(values):5.1f} ms   p90 {p90:5.1f} ms"
            f"   max {values[-1]:5.1f} ms"
        )

    print(f"the lock held 5-80 ms, {args.rounds} rounds each; time from release to taken:")
    print(line("SQLite's busy handler (baseline)", baseline))
    print(line("the store's BEGIN IMMEDIATE", store))
    print(f"ratio p50 {statistics.median(baseline) / statistics.median(store):.1f}x")


if __name__ == "__main__":
    main()
