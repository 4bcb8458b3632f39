"""Start the monitoring loop of a rehearsal: the real Prometheus and two clustered Alertmanagers
(Debian's `prometheus` and `prometheus-alertmanager`), watching the sandbox and notifying the
intake, so that an alert reaches triage the way it does in a cluster (DESIGN.md, "Monitoring
in the loop"): sandbox /exporters/* -> Prometheus (infra/prometheus rules at rehearsal speed)
-> Alertmanager x2 (HA, gossiping on loopback) -> the intake's webhook.

Each binary runs as a remediate.processes.Child (its own process group, its log in `log_dir`),
stopped when the caller's ExitStack closes. Their files live under `state_dir/monitoring/`:
generated configuration, the transformed rules, and storage emptied at every start, because the
sandbox they watch is new each time (an old TSDB would restore `for:` state, an old
notification log would hold back a notification, about a cluster that no longer exists).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from remediate.monitoring.configs import (
    RECEIVER_FILE,
    alertmanager_config,
    prometheus_config,
    write_yaml,
)
from remediate.monitoring.rules import RULE_FILE, rehearsal_rule_file
from remediate.monitoring.timing import Timing, format_duration
from remediate.processes import Child, answers, free_port

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name; there is no `alertmanager` binary
READY_SECONDS = 60.0
HOST = "127.0.0.1"
# Gossip fast enough for the peers to find each other and share silences and the notification
# log within a second; settling waits at most this long for peers at start.
GOSSIP_INTERVAL = "50ms"
PUSHPULL_INTERVAL = "1s"
SETTLE_TIMEOUT = "1s"
RECONNECT_INTERVAL = "1s"


def missing_binaries() -> list[str]:
    """The binaries of the loop that are not on the PATH (apt-get install prometheus
    prometheus-alertmanager)."""
    return [name for name in (PROMETHEUS, ALERTMANAGER) if shutil.which(name) is None]


def binaries_present() -> bool:
    """Whether the loop can start here: both Prometheus and Alertmanager are installed."""
    return not missing_binaries()


@dataclass
class MonitoringLoop:
    """What start_loop started: where to query it, and the children (stopped by the ExitStack)."""

    prometheus_url: str
    alertmanager_urls: tuple[str, str]
    timing: Timing
    prometheus_config: Path
    alertmanager_config: Path
    rule_file: Path
    children: list[Child] = field(default_factory=list)


def _distinct_ports(count: int) -> list[int]:
    """`count` free loopback ports, no two alike (free_port may hand one out twice)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _start(exits: ExitStack, loop: MonitoringLoop, name: str, argv: list[str], log: Path) -> Child:
    child = Child(name, argv, dict(os.environ), log).start()
    exits.callback(child.stop)
    loop.children.append(child)
    return child


def start_loop(
    *,
    sandbox_url: str,
    intake_url: str,
    token_file: Path,
    state_dir: Path,
    log_dir: Path,
    speed: float,
    probe_urls: Sequence[str],
    exits: ExitStack,
    rules: Path = RULE_FILE,
    receiver: Path = RECEIVER_FILE,
) -> MonitoringLoop:
    """Start Prometheus and two clustered Alertmanagers for the sandbox at `sandbox_url`,
    notifying `intake_url` with the bearer token in `token_file`, every production duration
    divided by `speed` (remediate/monitoring/timing.py). `probe_urls` are what the blackbox job
    probes (the JWKS URL, the client's URL). Returns once all three answer /-/ready; each child
    stops when `exits` closes, also when this raises."""
    missing = missing_binaries()
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not on the PATH: apt-get install prometheus "
            "prometheus-alertmanager"
        )
    timing = Timing(speed)
    state = state_dir.resolve() / "monitoring"
    prom_port, *am_ports = _distinct_ports(5)
    am_web, am_cluster = am_ports[:2], am_ports[2:]
    am_urls = (f"http://{HOST}:{am_web[0]}", f"http://{HOST}:{am_web[1]}")

    rule_file = state / "prometheus" / "rules.yaml"
    rule_file.parent.mkdir(parents=True, exist_ok=True)
    rule_file.write_text(rehearsal_rule_file(rules.read_text(), speed))
    prom_config = write_yaml(
        state / "prometheus" / "prometheus.yml",
        prometheus_config(
            sandbox_url=sandbox_url,
            rule_file=rule_file,
            alertmanagers=[f"{HOST}:{port}" for port in am_web],
            probe_urls=probe_urls,
            timing=timing,
        ),
    )
    am_config = write_yaml(
        state / "alertmanager" / "alertmanager.yml",
        alertmanager_config(
            receiver.read_text(),
            webhook_url=intake_url,
            token_file=token_file.resolve(),
            timing=timing,
        ),
    )
    loop = MonitoringLoop(
        prometheus_url=f"http://{HOST}:{prom_port}",
        alertmanager_urls=am_urls,
        timing=timing,
        prometheus_config=prom_config,
        alertmanager_config=am_config,
        rule_file=rule_file,
    )

    peer_timeout = format_duration(timing.peer_timeout)
    alertmanagers = [
        _start(
            exits,
            loop,
            f"alertmanager-{i}",
            [
                ALERTMANAGER,
                f"--config.file={am_config}",
                f"--storage.path={_fresh(state / 'alertmanager' / f'data-{i}')}",
                f"--web.listen-address={HOST}:{am_web[i]}",
                f"--cluster.listen-address={HOST}:{am_cluster[i]}",
                f"--cluster.peer={HOST}:{am_cluster[1 - i]}",
                f"--cluster.gossip-interval={GOSSIP_INTERVAL}",
                f"--cluster.pushpull-interval={PUSHPULL_INTERVAL}",
                f"--cluster.settle-timeout={SETTLE_TIMEOUT}",
                f"--cluster.reconnect-interval={RECONNECT_INTERVAL}",
                f"--cluster.peer-timeout={peer_timeout}",
            ],
            log_dir / f"alertmanager-{i}.log",
        )
        for i in (0, 1)
    ]
    prometheus = _start(
        exits,
        loop,
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={_fresh(state / 'prometheus' / 'data')}",
            f"--web.listen-address={HOST}:{prom_port}",
            f"--rules.alert.resend-delay={format_duration(timing.resend_delay)}",
        ],
        log_dir / "prometheus.log",
    )
    waits = [(prometheus, loop.prometheus_url), *zip(alertmanagers, am_urls, strict=True)]
    for child, url in waits:
        child.wait_until(answers(f"{url}/-/ready"), READY_SECONDS, "/-/ready")
    return loop
