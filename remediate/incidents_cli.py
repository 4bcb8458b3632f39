"""`remediate incidents ...` and `remediate db ...`: the incident store from the command line.

Reading commands open the store directly (no Prefect needed); `report` runs the post-incident
flow, so the re-rendered report is also published as an artifact of a Prefect run. Every
command refuses an unmigrated database with the command that fixes it.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from store.queries import IncidentRecord
    from store.stats import EffectivenessReport

console = Console()
err = Console(stderr=True)

incidents_app = typer.Typer(
    help="Incidents recorded by triage: list, timeline, report, effectiveness figures.",
    no_args_is_help=True,
)
db_app = typer.Typer(
    help="The incident store's schema (REMEDIATE_STORE__URL; SQLite under var/ by default).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
DURATION = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def store_url() -> str:
    from tasks.settings import Settings

    return Settings().store.url.get_secret_value()


def require_store() -> str:
    """The store's URL once it is known to be migrated; exit 1 saying what to run otherwise."""
    from store.engine import StoreError, engine_for, shown
    from store.schema import StoreNotMigrated

    url = store_url()
    try:
        engine_for(url)
    except StoreNotMigrated as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except StoreError as exc:
        err.print(f"[red]cannot open the incident store at {shown(url)}: {exc}[/red]")
        raise typer.Exit(1) from exc
    return url


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the incident store's tables to this version's schema (idempotent)."""
    from store.engine import create, shown
    from store.schema import current_revision, head_revision, upgrade

    url = store_url()
    engine = create(url)
    try:
        before = current_revision(engine)
    finally:
        engine.dispose()
    upgrade(url)
    after = head_revision()
    what = "already at" if before == after else f"migrated from {before or 'empty'} to"
    console.print(f"incident store {shown(url)}: {what} revision {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema revision and whether this version can use it (exit 1 if not)."""
    from store.engine import create, shown
    from store.schema import current_revision, head_revision

    url = store_url()
    engine = create(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    console.print(f"incident store {shown(url)}: revision {current or '(none)'}, this code {head}")
    if current != head:
        raise typer.Exit(1)


def parse_since(text: str | None) -> datetime | None:
    """`7d`, `24h`, `90m`, `2w`: that long ago."""
    if text is None:
        return None
    match = DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(
            "use a number and m, h, d or w, e.g. 24h or 7d", param_hint="--since"
        )
    amount, unit = int(match.group(1)), UNITS[match.group(2)]
    return datetime.now(UTC) - timedelta(**{unit: amount})


@incidents_app.command("list")
def incidents_list(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="open, triaged, mitigating, verified, escalated, resolved (repeatable); "
            "'active' means every status but resolved.",
        ),
    ] = None,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="A to F (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Opened within, e.g. 24h, 7d.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, newest first.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """The incidents, newest first, as a table."""
    from store.engine import session_for
    from store.queries import list_incidents

    statuses = _statuses(status or [])
    scenarios = _scenarios(scenario or [])
    url = require_store()
    with session_for(url) as session:
        rows = list_incidents(
            session, statuses=statuses, scenarios=scenarios, since=parse_since(since), limit=limit
        )
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    from remediate.render import print_incidents

    print_incidents(console, rows)


def _statuses(given: list[str]) -> list[str]:
    from store.models import IncidentStatus

    known = {s.value for s in IncidentStatus}
    chosen: list[str] = []
    for value in given:
        if value == "active":
            chosen += [s.value for s in IncidentStatus if s is not IncidentStatus.RESOLVED]
        elif value in known:
            chosen.append(value)
        else:
            raise typer.BadParameter(
                f"{value!r}: use one of {', '.join(sorted(known))} or active", param_hint="--status"
            )
    return chosen


def _scenarios(given: list[str]) -> list[str]:
    chosen = [g.upper() for g in given]
    bad = [g for g in chosen if g not in {"A", "B", "C", "D", "E", "F"}]
    if bad:
        raise typer.BadParameter(f"{', '.join(bad)}: scenarios are A to F", param_hint="--scenario")
    return chosen


IdArgument = Annotated[int, typer.Argument(min=1, help="The incident's id (see `incidents list`).")]


def _load(incident_id: int) -> IncidentRecord:
    from store.engine import session_for
    from store.incidents import IncidentNotFound
    from store.queries import load_incident

    url = require_store()
    try:
        with session_for(url) as session:
            return load_incident(session, incident_id=incident_id)
    except IncidentNotFound as exc:
        err.print(f"[red]{exc}[/red] (`remediate incidents list` shows the ids)")
        raise typer.Exit(2) from exc


@incidents_app.command("show")
def incidents_show(incident_id: IdArgument, as_json: JsonOption = False) -> None:
    """One incident: what it is, its timeline, its actions and follow-ups."""
    from remediate.render import print_incident

    record = _load(incident_id)
    if as_json:
        print(json.dumps(_record_json(record), indent=2))
        return
    print_incident(console, record)


def _record_json(record: IncidentRecord) -> dict[str, object]:
    return {
        "incident": record.incident.model_dump(mode="json"),
        "alerts": [a.model_dump(mode="json") for a in record.alerts],
        "decisions": [d.model_dump(mode="json") for d in record.decisions],
        "actions": [a.model_dump(mode="json") for a in record.actions],
        "follow_ups": [f.model_dump(mode="json") for f in record.follow_ups],
        "timeline": [e.model_dump(mode="json") for e in record.events],
    }


@incidents_app.command("report")
def incidents_report(
    incident_id: IdArgument,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            file_okay=False,
            help="Write it here (default REMEDIATE_INCIDENTS__REPORTS_DIR, or where it was).",
        ),
    ] = None,
    show: Annotated[bool, typer.Option("--print", help="Also print the markdown.")] = False,
) -> None:
    """Re-render the post-incident report from the store (runs the post-incident flow)."""
    _load(incident_id)  # a clear error for an unknown id before Prefect starts
    from remediate.prefect_runtime import prefect_environment

    prefect_environment()
    from flows.post_incident import post_incident
    from remediate.prefect_runtime import quiet_prefect

    if output_dir is not None:
        _forget_report_path(incident_id)
    with quiet_prefect():
        report = post_incident(incident_id=incident_id, reports_dir=output_dir)
    if show:
        print(report.markdown, end="")
    console.print(f"report: {report.path}")


def _forget_report_path(incident_id: int) -> None:
    """--output-dir asks for a new place: the report is written there, and remembered there."""
    from store.engine import session_for
    from store.incidents import get_incident

    with session_for(require_store()) as session:
        incident = get_incident(session, incident_id=incident_id)
        incident.report_path = None
        session.add(incident)


@incidents_app.command("stats")
def incidents_stats(
    since: Annotated[str | None, typer.Option("--since", help="Opened within, e.g. 30d.")] = None,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="A to F (repeatable).")
    ] = None,
    prometheus: Annotated[
        bool, typer.Option("--prometheus", help="Print Prometheus exposition text instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Per scenario: incidents, mitigated automatically, escalated, time to mitigate (median and
    p95, from first evidence to the verified fix), repeats within 24 h."""
    report = _effectiveness(since, _scenarios(scenario or []))
    if prometheus:
        from remediate.metrics import prometheus_text

        print(prometheus_text(report), end="")
    elif as_json:
        print(report.model_dump_json(indent=2))
    else:
        from remediate.render import print_effectiveness

        print_effectiveness(console, report)


def _effectiveness(since: str | None, scenarios: list[str]) -> EffectivenessReport:
    from store.engine import session_for
    from store.stats import effectiveness

    when = parse_since(since)
    with session_for(require_store()) as session:
        return effectiveness(session, since=when, scenarios=scenarios)


@incidents_app.command("metrics")
def incidents_metrics(
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 9464,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the effectiveness figures at /metrics for Prometheus, fresh on every scrape,
    until Ctrl-C or SIGTERM."""
    from remediate.metrics import serve_metrics, stop_metrics

    require_store()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server, thread = serve_metrics(lambda: _effectiveness(None, []), host, port)
    except OSError as exc:
        err.print(f"[red]cannot listen on {host}:{port}: {exc.strerror or exc}[/red]")
        raise typer.Exit(1) from exc
    print(f"serving http://{host}:{server.server_port}/metrics (Ctrl-C stops)", flush=True)
    try:
        stop.wait()
    finally:
        stop_metrics(server, thread)
