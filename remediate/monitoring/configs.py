"""The rehearsal's Prometheus and Alertmanager configuration, generated from infra/ and the
sandbox's address, so that a rehearsal runs the production rules and route, not look-alikes.

Prometheus scrapes the sandbox's exporter endpoints under the job names the rules and triage
expect (`kube-state-metrics` exactly: tasks/models/alerts.py reads its alerts' namespace and pod
as the object's), with the label handling of a kube-prometheus-stack install: kube-state-metrics
with honor_labels (a pod's own namespace survives), ingress-nginx without (its metric's
`namespace` becomes `exported_namespace` beside the target's `ingress-nginx`), and blackbox
probes relabelled so `instance` is the probed URL.

Alertmanager gets infra/alertmanager/receiver.yaml's child route and receiver under a root route
whose default receiver drops everything (in a cluster, the operator's own receivers are there),
with the intake's URL, the token file and the group timings at rehearsal speed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from remediate.monitoring.timing import Timing, format_duration

RECEIVER_FILE = Path(__file__).resolve().parents[2] / "infra" / "alertmanager" / "receiver.yaml"
NULL_RECEIVER = "null"
# webhook_config keys newer than Alertmanager 0.25 (Debian 12's), which refuses unknown keys:
# receiver.yaml's `timeout` would make it exit at start.
WEBHOOK_KEYS_AFTER_0_25 = ("timeout",)
NOTIFY_TIMINGS = ("group_wait", "group_interval", "repeat_interval")


@dataclass(frozen=True)
class Exporter:
    """One scrape job against the sandbox: the job name is what the rules match on."""

    job: str
    path: str
    honor_labels: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


EXPORTERS = (
    Exporter("kube-state-metrics", "/exporters/kube-state-metrics/metrics", honor_labels=True),
    Exporter("celery-exporter", "/exporters/celery/metrics"),
    Exporter("postgres-exporter", "/exporters/postgres/metrics"),
    Exporter("redis-exporter", "/exporters/redis/metrics"),
    Exporter(
        "ingress-nginx-controller-metrics",
        "/exporters/ingress-nginx/metrics",
        labels={"namespace": "ingress-nginx"},
    ),
)
BLACKBOX_JOB = "blackbox"
BLACKBOX_PATH = "/exporters/blackbox/probe"
BLACKBOX_MODULE = "http_2xx"


def host_port(url: str) -> str:
    """`host:port` of an http(s) URL, the port spelled out (Prometheus targets need it)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _scrape_job(exporter: Exporter, target: str, scheme: str) -> dict[str, Any]:
    static: dict[str, Any] = {"targets": [target]}
    if exporter.labels:
        static["labels"] = dict(exporter.labels)
    return {
        "job_name": exporter.job,
        "scheme": scheme,
        "metrics_path": exporter.path,
        "honor_labels": exporter.honor_labels,
        "static_configs": [static],
    }


def _blackbox_job(probe_urls: Sequence[str], target: str, scheme: str) -> dict[str, Any]:
    """The blackbox exporter's usual relabelling: each target is a URL to probe, sent as
    `?target=`, kept as `instance` (what BlackboxProbeFailed names), scraped at the sandbox."""
    return {
        "job_name": BLACKBOX_JOB,
        "scheme": scheme,
        "metrics_path": BLACKBOX_PATH,
        "params": {"module": [BLACKBOX_MODULE]},
        "static_configs": [{"targets": list(probe_urls)}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": target},
        ],
    }


def prometheus_config(
    *,
    sandbox_url: str,
    rule_file: Path,
    alertmanagers: Sequence[str],
    probe_urls: Sequence[str],
    timing: Timing,
) -> dict[str, Any]:
    """prometheus.yml for the rehearsal: the sandbox's exporters, the (transformed) rules, both
    Alertmanagers (`host:port`); scrape and evaluation intervals at `timing`'s speed."""
    target, scheme = host_port(sandbox_url), urlsplit(sandbox_url).scheme or "http"
    interval = format_duration(timing.scrape_interval)
    jobs = [_scrape_job(exporter, target, scheme) for exporter in EXPORTERS]
    if probe_urls:
        jobs.append(_blackbox_job(probe_urls, target, scheme))
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,  # may not exceed the interval (default 10 s)
            "evaluation_interval": format_duration(timing.evaluation_interval),
        },
        "rule_files": [str(rule_file)],
        "alerting": {
            "alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": list(alertmanagers)}]}
            ]
        },
        "scrape_configs": jobs,
    }


def alertmanager_config(
    receiver_text: str, *, webhook_url: str, token_file: Path, timing: Timing
) -> dict[str, Any]:
    """alertmanager.yml from receiver.yaml's fragment: its route (group timings at `timing`'s
    speed) under a root route to a receiver that drops, and its receiver posting to
    `webhook_url` with the bearer token read from `token_file`."""
    fragment = yaml.safe_load(receiver_text)
    routes = copy.deepcopy(fragment["route"]["routes"])
    for route in routes:
        for key in NOTIFY_TIMINGS:
            if key in route:
                route[key] = timing.notify(route[key])
    receivers = copy.deepcopy(fragment["receivers"])
    for receiver in receivers:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
            webhook["send_resolved"] = True
            auth = webhook.setdefault("http_config", {}).setdefault("authorization", {})
            auth["type"] = "Bearer"
            auth["credentials_file"] = str(token_file)
            for key in WEBHOOK_KEYS_AFTER_0_25:
                webhook.pop(key, None)
    return {
        "route": {"receiver": NULL_RECEIVER, "routes": routes},
        "receivers": [{"name": NULL_RECEIVER}, *receivers],
    }


def write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False, width=10_000))
    return path
