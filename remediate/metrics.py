"""The incident store's effectiveness figures as Prometheus metrics.

Exported, one series per scenario (`scenario` is the runbook letter or `unclassified`):

    remediate_incidents_total{scenario}                              counter
    remediate_incidents_mitigated_automatically_total{scenario}      counter
    remediate_incidents_escalated_total{scenario}                    counter
    remediate_incidents_open{scenario}                               gauge
    remediate_incident_repeats_24h_total{scenario}                   counter
    remediate_time_to_mitigate_seconds{scenario, quantile="0.5"|"0.95"}  gauge

The counts are read from the database on every scrape, not incremented in this process: they
only grow as incidents are recorded (unless a `since` window moves), so they are counters and
`rate()`/`increase()` apply. `remediate_incidents_open` falls as incidents resolve: a gauge.

The counts carry no `scenario="all"` series, because `sum()` over the scenarios gives it
exactly and an extra series would double every sum. The time to mitigate does carry
`scenario="all"`: quantiles cannot be summed or averaged, so the overall one is computed from
every duration (see `store.stats`). A quantile sample is left out while there is no automated,
verified incident to measure, rather than exported as 0 (which would read as "instant").

The time to mitigate is a gauge with a `quantile` label and not a summary, because a summary
also needs `_count` and `_sum` of the observations and these quantiles are recomputed from the
store, not observed.

prometheus_client's counter families drop a trailing `_total` from the name they are given and
add it back to the sample, so `CounterMetricFamily("remediate_incidents_total", ...)` renders
the family as `remediate_incidents` in OpenMetrics and the sample as `remediate_incidents_total`
in both formats. Every collector here lives on a private `CollectorRegistry`, never the global
one, so importing this module registers nothing and two reports never clash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from store.stats import EffectivenessReport, ScenarioFigures

QUANTILES: tuple[tuple[str, Callable[[ScenarioFigures], float | None]], ...] = (
    ("0.5", lambda row: row.time_to_mitigate_median_seconds),
    ("0.95", lambda row: row.time_to_mitigate_p95_seconds),
)

# (name, help, the count of a row) of each counter exported per scenario.
_COUNTERS: tuple[tuple[str, str, Callable[[ScenarioFigures], int]], ...] = (
    ("remediate_incidents_total", "Incidents recorded in the store.", lambda row: row.incidents),
    (
        "remediate_incidents_mitigated_automatically_total",
        "Incidents a flow mitigated: its change was verified without a human fixing it.",
        lambda row: row.mitigated_automatically,
    ),
    (
        "remediate_incidents_escalated_total",
        "Incidents that escalated to a human at some point.",
        lambda row: row.escalated,
    ),
    (
        "remediate_incident_repeats_24h_total",
        "Incidents that opened within 24 h of an earlier one of the same scenario and target.",
        lambda row: row.repeats_within_24h,
    ),
)


def _counter(
    name: str,
    help_text: str,
    count: Callable[[ScenarioFigures], int],
    rows: Sequence[ScenarioFigures],
) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=["scenario"])
    for row in rows:
        family.add_metric([row.scenario], float(count(row)))
    return family


def _open(rows: Sequence[ScenarioFigures]) -> Metric:
    family = GaugeMetricFamily(
        "remediate_incidents_open", "Incidents not resolved yet.", labels=["scenario"]
    )
    for row in rows:
        family.add_metric([row.scenario], float(row.open))
    return family


def _time_to_mitigate(rows: Sequence[ScenarioFigures]) -> Metric:
    family = GaugeMetricFamily(
        "remediate_time_to_mitigate_seconds",
        "Seconds from opening to a verified automated mitigation, by quantile "
        "(linear interpolation over the store's incidents).",
        labels=["scenario", "quantile"],
    )
    for row in rows:
        for quantile, of in QUANTILES:
            value = of(row)
            if value is not None:
                family.add_metric([row.scenario, quantile], float(value))
    return family


def metric_families(report: EffectivenessReport | None) -> list[Metric]:
    """The families of `report`; with None, the same families without samples (what
    `describe()` returns, so registering needs no database read)."""
    rows = report.by_scenario if report is not None else ()
    with_overall = (*rows, report.overall) if report is not None else ()
    return [
        *(_counter(name, help_text, count, rows) for name, help_text, count in _COUNTERS),
        _open(rows),
        _time_to_mitigate(with_overall),
    ]


class EffectivenessCollector:
    """A collector that asks `load` for a fresh report on every collection (every scrape)."""

    def __init__(self, load: Callable[[], EffectivenessReport]) -> None:
        self._load = load

    def describe(self) -> Iterable[Metric]:
        return metric_families(None)

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._load())


def registry_for(load: Callable[[], EffectivenessReport]) -> CollectorRegistry:
    """A private registry holding only the effectiveness collector."""
    registry = CollectorRegistry()
    registry.register(EffectivenessCollector(load))
    return registry


def prometheus_text(report: EffectivenessReport) -> str:
    """The report in the Prometheus text exposition format (version 0.0.4)."""
    return generate_latest(registry_for(lambda: report)).decode("utf-8")


def serve_metrics(
    load: Callable[[], EffectivenessReport], host: str, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """Serve `/metrics` on host:port (port 0 picks a free one: read `server.server_port`) from
    a daemon thread, calling `load` on each scrape so every scrape sees the store as it is.

    A `load` that raises fails that scrape with HTTP 500, so Prometheus marks the target down
    instead of recording stale figures. Stop with `stop_metrics(server, thread)`.
    """
    server, thread = start_http_server(port, addr=host, registry=registry_for(load))
    return server, thread


def stop_metrics(server: WSGIServer, thread: threading.Thread, timeout: float = 5.0) -> None:
    """Stop serving, close the listening socket and wait for the serving thread."""
    server.shutdown()
    server.server_close()
    thread.join(timeout)
