"""`python -m remediate.monitoring [--speed N] [FILE]`: print the rule file Prometheus and
promtool read (the PrometheusRule's `spec`; with --speed, the rehearsal transformation)."""

from remediate.monitoring.rules import main

main()
