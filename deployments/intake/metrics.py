"""The intake's Prometheus metrics, on a private registry (importing registers nothing).

remediate_intake_alerts_accepted_total     alerts stored for the first time
remediate_intake_alerts_duplicate_total    copies of stored alerts (retries, HA replicas)
remediate_intake_alerts_ignored_total      alerts outside the configured namespaces
remediate_intake_payloads_rejected_total{reason}   unauthorized, invalid, too_large,
                                                   store_unavailable
remediate_intake_runs_started_total        triage runs created through the Prefect API
remediate_intake_outbox_pending            triage runs owed and not created yet (a gauge
                                           read from the store on every scrape)
remediate_intake_request_seconds           time to answer a webhook POST
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REJECTION_REASONS = ("unauthorized", "invalid", "too_large", "store_unavailable")


class IntakeMetrics:
    def __init__(self, outbox_pending: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "remediate_intake_alerts_accepted", "Alerts stored for the first time", registry=r
        )
        self.duplicates = Counter(
            "remediate_intake_alerts_duplicate",
            "Copies of alerts already stored (retries, HA replicas, repeats)",
            registry=r,
        )
        self.ignored = Counter(
            "remediate_intake_alerts_ignored",
            "Alerts about namespaces outside the configured ones",
            registry=r,
        )
        self.rejected = Counter(
            "remediate_intake_payloads_rejected",
            "Webhook POSTs refused, by reason",
            ["reason"],
            registry=r,
        )
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason)
        self.runs_started = Counter(
            "remediate_intake_runs_started",
            "Triage flow runs created through the Prefect API",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "remediate_intake_outbox_pending",
            "Triage runs owed to incidents and not created yet",
            registry=r,
        )
        self.outbox_pending.set_function(outbox_pending)
        self.latency = Histogram(
            "remediate_intake_request_seconds",
            "Time to answer a webhook POST",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
