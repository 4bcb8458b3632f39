"""A real Celery app standing in for AlphaSwarm's `alphaswarm.tasks.celery_app`.

Scenario C is about a real queue draining: the tasks here only sleep, so a worker process
finishes a fixed number of them per second and throughput grows with the number of worker
processes, which is exactly what scaling `alphaswarm-worker` is meant to buy. The task names and
the queue (`celery`, as in `tasks.settings.CeleryBroker`) are AlphaSwarm's.

Worker processes import this module by name (`celery -A sandbox.celery_app worker`) and find the
broker in `BROKER_ENV`; the sandbox process and the tests build their own app with `make_app`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

BROKER_ENV = "SANDBOX_CELERY_BROKER_URL"
QUEUE = "celery"
BACKTEST = "alphaswarm.tasks.backtest"
REPORT = "alphaswarm.tasks.report"


def make_app(broker_url: str) -> Celery:
    """A Celery app on `broker_url` (Redis), which is also its result backend."""
    app = Celery("alphaswarm.tasks", broker=broker_url, backend=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        # One message reserved per process: a scaled-out pool shares the backlog instead of the
        # first two workers prefetching all of it.
        worker_prefetch_multiplier=1,
        # Keeps Celery 5 from warning that the startup retry default changes in Celery 6.
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        result_expires=600,
        worker_hijack_root_logger=False,
        task_send_sent_event=False,
        worker_send_task_events=False,
    )
    app.task(name=BACKTEST)(_backtest)
    app.task(name=REPORT)(_report)
    return app


def _backtest(run_id: int, strategy: str = "momentum-v3", seconds: float = 0.1) -> dict[str, Any]:
    """A backtest that holds its worker process for `seconds`, as a CPU-bound one would."""
    time.sleep(seconds)
    return {"run_id": run_id, "strategy": strategy, "seconds": seconds}


def _report(name: str, seconds: float = 0.1) -> str:
    time.sleep(seconds)
    return name


# The app `celery -A sandbox.celery_app` finds; only worker processes and the CLI import it.
app = make_app(os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"))
