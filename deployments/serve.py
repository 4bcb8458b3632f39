"""Serve the flows from one long-running process (no work pool needed): the lightest production
shape on one machine. Each run happens in a subprocess of this one.

    python -m deployments.serve
    python -m deployments.serve --check   the start-up check alone, then exit (0: it would start)

It serves every deployment of `deployments/table.py`, the table `deployments/prefect.yaml` is
generated from (`tests/unit/test_deployments.py` checks the two agree):

- `triage`, on demand: what the Prefect UI and the Alertmanager intake start with an incident.
  Its default is a dry run; applying is a parameter an operator sets.
- the scenario flows A to F (`pod-crash` ... `stateful-failover`), on demand: triage runs them
  as subflows; an operator can start one directly against a target.
- `health-sweep`, every 5 minutes, one at a time: the runbook's common diagnostics, read-only.
- `post-incident`, on demand: re-render an incident's report from the store (triage runs it
  itself when an incident resolves or escalates).
- `revert-auth-enforce`, on demand: runbook D schedules a run of it whenever it flips
  ALPHASWARM_AUTH_ENFORCE to permissive. A scheduled run only happens if something serves the
  deployment, so it is served here, under the very name `schedule_revert` registers.

The runner asks Prefect for runs to start every REMEDIATE_SERVING__POLL_SECONDS, and is also
told of a new run at once: it follows Prefect's own event stream (`/api/events/out`) for
`prefect.flow-run.Scheduled`, the event the server emits when a run is created (the intake's,
the UI's, a schedule's), and asks for runs to start as soon as one comes. The poll stays as it
was: a lost connection or an event that never came only costs the poll's wait.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import anyio
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner

from deployments import warm_start
from deployments.table import DEPLOYMENTS, PREFECT_YAML, render_prefect_yaml, runner_deployments
from store.engine import engine_for
from store.schema import StoreNotMigrated
from tasks.settings import Settings

__all__ = ["SCHEDULED", "check", "main", "require_migrated_store", "runner_deployments", "serve"]

SCHEDULED = "prefect.flow-run.Scheduled"
RECONNECT_SECONDS = 1.0
log = logging.getLogger("remediate.serve")


def require_migrated_store() -> None:
    """Refuse to serve flows that would fail on their first incident record."""
    try:
        engine_for(Settings().store.url.get_secret_value())
    except StoreNotMigrated as exc:
        raise SystemExit(str(exc)) from exc


def check() -> None:
    """Everything start-up needs short of Prefect's API, for an install or an image to prove
    itself: every served flow imports and builds its deployment, the prefect.yaml shipped with
    the package is the table's rendering, and the store is migrated."""
    names = [deployment.name for deployment in runner_deployments()]
    if PREFECT_YAML.read_text(encoding="utf-8") != render_prefect_yaml():
        raise SystemExit(f"{PREFECT_YAML} is not the deployments table's rendering")
    require_migrated_store()
    print(f"serve check passed: {len(names)} deployments ({', '.join(names)}); store migrated")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="run the start-up check without Prefect, then exit"
    )
    if parser.parse_args(argv).check:
        check()
        return
    # Each run forked from a warm process with the flows imported, handed its entrypoint.
    warm_start.install(entrypoints={d.name: d.entrypoint for d in DEPLOYMENTS})
    require_migrated_store()
    serve(Settings().serving.poll_seconds)


def serve(poll_seconds: float) -> None:
    """Prefect's `serve()` for the table's deployments, plus the wake-up on new runs."""
    # Restarting the serve process must not pause the schedules operators rely on.
    # query_seconds: PREFECT_RUNNER_POLL_FREQUENCY takes whole seconds only.
    runner = Runner(pause_on_shutdown=False, query_seconds=poll_seconds)
    deployments = runner_deployments()
    for deployment in deployments:
        runner.add_deployment(deployment)
    names = ", ".join(f"{d.flow_name}/{d.name}" for d in deployments)
    print(f"serving {len(deployments)} deployments: {names}", flush=True)
    try:
        asyncio.run(_run(runner))
    except (KeyboardInterrupt, TerminationSignal):
        log.info("serve stopped")


async def _run(runner: Runner) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(wake_on_new_runs, runner)
        await runner.start()
        group.cancel_scope.cancel()


async def wake_on_new_runs(runner: Runner) -> None:
    """Ask for runs to start whenever Prefect says a flow run was scheduled; reconnect when
    the stream drops (the poll covers the gap)."""
    while not runner.started:  # the runner builds its poller as it starts
        await anyio.sleep(0.05)
    only_scheduled = EventFilter(event=EventNameFilter(name=[SCHEDULED]))
    while runner.started:
        try:
            async with get_events_subscriber(filter=only_scheduled) as events:
                async for _ in events:
                    if not runner.started:
                        return
                    await _poll_now(runner)
        except Exception as exc:  # the server restarting, say: the poll goes on meanwhile
            log.debug("event stream lost (%s): reconnecting", exc)
        await anyio.sleep(RECONNECT_SECONDS)


async def _poll_now(runner: Runner) -> Any:
    """One poll of the runner's own, out of turn: the runs it finds start as the poll's would
    (a run already being submitted is not submitted twice)."""
    return await runner._get_and_submit_flow_runs()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
