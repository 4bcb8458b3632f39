"""Rehearsal timing: every interval of the monitoring loop, derived from one speed factor.

A rehearsal runs the production rules and routes against the sandbox, whose controllers move in
fractions of a second; waiting 15 real minutes for a `for: 15m` would make it useless. So one
number, `speed`, divides every production duration (60 means 60x faster: `for: 15m` becomes
15 s, kube-prometheus-stack's 30 s scrape interval 0.5 s). Floors keep the scaled loop sound:

- scrape and evaluation intervals: at least MIN_INTERVAL_SECONDS (0.2 s); below that Prometheus
  spends its time scraping and the sandbox answering, not moving;
- a range selector (`[5m]`): at least RANGE_MIN_SCRAPES scrape intervals, so rate() and
  changes() always have two samples or more to work on;
- `for:`: at least one evaluation interval (zero stays zero), so an alert is pending for one
  evaluation before it fires, as in production;
- Prometheus's resend delay: at least one evaluation interval;
- Alertmanager's group_wait, group_interval, repeat_interval and its peer timeout: at least
  MIN_NOTIFY_SECONDS (0.5 s), so a group still collects what one evaluation fires.

speed 1 is production's timing (the floors are all below production's values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_INTERVAL_SECONDS = 0.2
RANGE_MIN_SCRAPES = 4
MIN_NOTIFY_SECONDS = 0.5

# kube-prometheus-stack's defaults, the production timing the rules were written for.
SCRAPE_INTERVAL_SECONDS = 30.0
EVALUATION_INTERVAL_SECONDS = 30.0
RESEND_DELAY_SECONDS = 60.0  # Prometheus's --rules.alert.resend-delay default
PEER_TIMEOUT_SECONDS = 15.0  # Alertmanager's --cluster.peer-timeout default

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
DURATION = r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+"
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(rf"^{DURATION}$")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (`1h30m`, `500ms`); ValueError for anything else."""
    if not _WHOLE.match(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """`seconds` as a Prometheus/Alertmanager duration, to the millisecond, in the largest unit
    that holds it exactly (`5m`, `15s`, `500ms`: neither parser takes fractions), so speed 1
    writes production's durations as they were."""
    ms = max(0, round(seconds * 1000))
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms else "0s"


@dataclass(frozen=True)
class Timing:
    """The loop's intervals at one speed factor, in seconds (see the module's docstring)."""

    speed: float

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"the speed factor must be positive, not {self.speed}")

    def scaled(self, seconds: float, floor: float = 0.0) -> float:
        """`seconds` of production time at this speed, never below `floor`; zero stays zero."""
        if seconds == 0:
            return 0.0
        return max(seconds / self.speed, floor)

    @property
    def scrape_interval(self) -> float:
        return self.scaled(SCRAPE_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS)

    @property
    def evaluation_interval(self) -> float:
        return self.scaled(EVALUATION_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS)

    @property
    def range_floor(self) -> float:
        return RANGE_MIN_SCRAPES * self.scrape_interval

    @property
    def resend_delay(self) -> float:
        return self.scaled(RESEND_DELAY_SECONDS, self.evaluation_interval)

    @property
    def peer_timeout(self) -> float:
        return self.scaled(PEER_TIMEOUT_SECONDS, MIN_NOTIFY_SECONDS)

    def range(self, duration: str) -> str:
        """A range selector's duration (`5m`) at this speed, at least `range_floor`."""
        return format_duration(self.scaled(parse_duration(duration), self.range_floor))

    def hold(self, duration: str) -> str:
        """A rule's `for:` at this speed, at least one evaluation interval."""
        return format_duration(self.scaled(parse_duration(duration), self.evaluation_interval))

    def notify(self, duration: str) -> str:
        """An Alertmanager group_wait / group_interval / repeat_interval at this speed."""
        return format_duration(self.scaled(parse_duration(duration), MIN_NOTIFY_SECONDS))

    def plain(self, duration: str) -> str:
        """Any other duration (an `offset`) at this speed, without a floor."""
        return format_duration(self.scaled(parse_duration(duration)))
