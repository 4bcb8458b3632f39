"""The Prometheus export of the effectiveness figures: the text parsed back, and a real HTTP
server scraped twice."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from remediate.metrics import prometheus_text, serve_metrics, stop_metrics
from store.stats import EffectivenessReport, ScenarioFigures


def figures(scenario: str, **values: float | None) -> ScenarioFigures:
    fields: dict[str, float | None] = {
        "incidents": 0,
        "mitigated_automatically": 0,
        "escalated": 0,
        "open": 0,
        "time_to_mitigate_median_seconds": None,
        "time_to_mitigate_p95_seconds": None,
        "repeats_within_24h": 0,
    }
    return ScenarioFigures.model_validate({"scenario": scenario, **fields, **values})


REPORT = EffectivenessReport(
    by_scenario=(
        figures(
            "A",
            incidents=5,
            mitigated_automatically=4,
            escalated=1,
            open=1,
            time_to_mitigate_median_seconds=42.5,
            time_to_mitigate_p95_seconds=118.25,
            repeats_within_24h=2,
        ),
        figures("C", incidents=2, escalated=2, open=2),  # nothing automated: no quantiles
        figures("unclassified", incidents=1, open=1),
    ),
    overall=figures(
        "all",
        incidents=8,
        mitigated_automatically=4,
        escalated=3,
        open=4,
        time_to_mitigate_median_seconds=42.5,
        time_to_mitigate_p95_seconds=118.25,
        repeats_within_24h=2,
    ),
)

COUNTERS = {
    "remediate_incidents_total": {"A": 5, "C": 2, "unclassified": 1},
    "remediate_incidents_mitigated_automatically_total": {"A": 4, "C": 0, "unclassified": 0},
    "remediate_incidents_escalated_total": {"A": 1, "C": 2, "unclassified": 0},
    "remediate_incident_repeats_24h_total": {"A": 2, "C": 0, "unclassified": 0},
}


def samples(text: str) -> dict[str, list[Sample]]:
    """Every sample of the exposition text, by sample name."""
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def by_scenario(found: list[Sample]) -> dict[str, float]:
    return {s.labels["scenario"]: s.value for s in found}


def test_the_sample_names_are_exactly_the_documented_ones() -> None:
    names = set(samples(prometheus_text(REPORT)))
    assert names == {*COUNTERS, "remediate_incidents_open", "remediate_time_to_mitigate_seconds"}


def test_counts_are_counters_and_open_a_gauge() -> None:
    text = prometheus_text(REPORT)
    # the parser names a counter's family without its _total, as the exposition's TYPE does
    assert types(text) == {
        "remediate_incidents": "counter",
        "remediate_incidents_mitigated_automatically": "counter",
        "remediate_incidents_escalated": "counter",
        "remediate_incident_repeats_24h": "counter",
        "remediate_incidents_open": "gauge",
        "remediate_time_to_mitigate_seconds": "gauge",
    }
    assert "# TYPE remediate_incidents_total counter" in text.splitlines()
    assert not any("_total_total" in line for line in text.splitlines())
    assert not any("_created" in line for line in text.splitlines())


@pytest.mark.parametrize("name", sorted(COUNTERS))
def test_counter_values_per_scenario_without_an_all_series(name: str) -> None:
    found = samples(prometheus_text(REPORT))[name]
    assert all(set(s.labels) == {"scenario"} for s in found)
    assert by_scenario(found) == COUNTERS[name]


def test_open_incidents_per_scenario() -> None:
    found = samples(prometheus_text(REPORT))["remediate_incidents_open"]
    assert by_scenario(found) == {"A": 1, "C": 2, "unclassified": 1}


def test_time_to_mitigate_quantiles_omit_none_and_include_the_overall_row() -> None:
    found = samples(prometheus_text(REPORT))["remediate_time_to_mitigate_seconds"]
    assert {(s.labels["scenario"], s.labels["quantile"]): s.value for s in found} == {
        ("A", "0.5"): 42.5,
        ("A", "0.95"): 118.25,
        ("all", "0.5"): 42.5,
        ("all", "0.95"): 118.25,
    }


def test_an_empty_report_renders_the_families_without_samples() -> None:
    empty = EffectivenessReport(by_scenario=(), overall=figures("all"))
    text = prometheus_text(empty)
    assert samples(text) == {}
    assert len(types(text)) == 6


def test_rendering_registers_nothing_on_the_global_registry() -> None:
    prometheus_text(REPORT)
    prometheus_text(REPORT)  # twice: a shared registry would refuse the duplicate names
    assert REGISTRY.get_sample_value("remediate_incidents_total", {"scenario": "A"}) is None
    assert "remediate_" not in generate_latest(REGISTRY).decode()


# --- serving --------------------------------------------------------------------------------


class Store:
    """A stand-in for the database: the report changes between scrapes, `load` counts calls."""

    def __init__(self, report: EffectivenessReport) -> None:
        self.report = report
        self.failure: Exception | None = None
        self.loads = 0
        self._lock = threading.Lock()

    def load(self) -> EffectivenessReport:
        with self._lock:
            self.loads += 1
            if self.failure is not None:
                raise self.failure
            return self.report


@pytest.fixture
def store() -> Store:
    return Store(REPORT)


@pytest.fixture
def metrics_url(store: Store) -> Iterator[str]:
    server, thread = serve_metrics(store.load, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    stop_metrics(server, thread)
    assert not thread.is_alive()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body: bytes = response.read()
    return body.decode("utf-8")


def test_registering_the_server_reads_nothing(metrics_url: str, store: Store) -> None:
    assert store.loads == 0


def test_every_scrape_loads_fresh_figures(metrics_url: str, store: Store) -> None:
    first = samples(scrape(metrics_url))
    assert by_scenario(first["remediate_incidents_total"])["A"] == 5
    assert "D" not in by_scenario(first["remediate_incidents_total"])

    store.report = EffectivenessReport(
        by_scenario=(*REPORT.by_scenario, figures("D", incidents=3, open=3)),
        overall=REPORT.overall.model_copy(update={"incidents": 11, "open": 7}),
    )
    second = samples(scrape(metrics_url))
    assert by_scenario(second["remediate_incidents_total"])["D"] == 3
    assert by_scenario(second["remediate_incidents_open"])["D"] == 3
    assert store.loads == 2


def test_a_failing_load_fails_the_scrape(metrics_url: str, store: Store) -> None:
    store.failure = RuntimeError("database unavailable")
    with pytest.raises(urllib.error.HTTPError) as failure:
        scrape(metrics_url)
    assert failure.value.code == 500
    failure.value.close()


def test_stopping_releases_the_port() -> None:
    server, thread = serve_metrics(lambda: REPORT, "127.0.0.1", 0)
    port = server.server_port
    assert "remediate_incidents_total" in scrape(f"http://127.0.0.1:{port}/metrics")
    stop_metrics(server, thread)
    assert not thread.is_alive()
    assert server.socket.fileno() == -1
    with pytest.raises(urllib.error.URLError):
        scrape(f"http://127.0.0.1:{port}/metrics")
