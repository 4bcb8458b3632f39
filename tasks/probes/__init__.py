"""probe_*: what the runbook reads, as typed snapshots. Read-only: they get `ClusterReader`."""
