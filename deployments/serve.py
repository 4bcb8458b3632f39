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
"""

from __future__ import annotations

import argparse

from prefect import serve

from deployments import warm_start
from deployments.table import PREFECT_YAML, render_prefect_yaml, runner_deployments
from store.engine import engine_for
from store.schema import StoreNotMigrated
from tasks.settings import Settings

__all__ = ["check", "main", "require_migrated_store", "runner_deployments"]


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
    warm_start.install()  # each run forked from a warm process with the flows imported
    require_migrated_store()
    # Restarting the serve process must not pause the schedules operators rely on.
    # query_seconds: PREFECT_RUNNER_POLL_FREQUENCY takes whole seconds only.
    serve(
        *runner_deployments(),
        pause_on_shutdown=False,
        query_seconds=Settings().serving.poll_seconds,
    )


if __name__ == "__main__":
    main()
