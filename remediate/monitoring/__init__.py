"""Monitoring in the loop (DESIGN.md): the project's one rule set and Alertmanager route, run by
the real Prometheus and Alertmanager against the sandbox during a rehearsal.

- `timing`: every interval from one speed factor, with the floors that keep it sound;
- `rules`: the PrometheusRule's `spec` as a rule file, and the rehearsal transformation;
- `configs`: prometheus.yml and alertmanager.yml generated from infra/ and the sandbox's URL;
- `loop`: start_loop, which starts Prometheus and two clustered Alertmanagers as children.
"""

from __future__ import annotations

from remediate.monitoring.loop import MonitoringLoop, binaries_present, missing_binaries, start_loop
from remediate.monitoring.rules import rehearsal_rule_file, rule_file_text
from remediate.monitoring.timing import Timing

__all__ = [
    "MonitoringLoop",
    "Timing",
    "binaries_present",
    "missing_binaries",
    "rehearsal_rule_file",
    "rule_file_text",
    "start_loop",
]
