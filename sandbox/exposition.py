"""The Prometheus text exposition format (version 0.0.4), written by hand.

The sandbox's exporters (`sandbox.api_exporters`) must answer what a real Prometheus 2.42 scrapes
and what `promtool check metrics` accepts, without pulling a metrics library into the sandbox's
distribution: their values are computed from the cluster at scrape time, so a registry of
long-lived metric objects would only have to be kept in step with the store. A family is its
`# HELP` and `# TYPE` lines and its samples, kept together as the format requires; label values
and help text are escaped as the format says (backslash, double quote, newline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["gauge", "counter", "untyped"]


@dataclass(frozen=True)
class Sample:
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass
class Family:
    """One metric: its name, type, help text and samples, in the order they were added."""

    name: str
    kind: Kind
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        """Add a sample; labels keep the order given, as the real exporters print them."""
        self.samples.append(Sample(tuple(labels.items()), float(value)))
        return self


def gauge(name: str, help_text: str) -> Family:
    return Family(name, "gauge", help_text)


def counter(name: str, help_text: str) -> Family:
    return Family(name, "counter", help_text)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def format_value(value: float) -> str:
    """Integers without a fraction (restart counts, replicas), other floats as Python prints
    them; the special values as the format spells them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(families: Iterable[Family]) -> str:
    """The exposition of `families`, each with its HELP and TYPE lines (even without samples,
    as kube-state-metrics prints them)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sample.labels)
            braces = f"{{{labels}}}" if labels else ""
            lines.append(f"{family.name}{braces} {format_value(sample.value)}")
    return "\n".join(lines) + "\n"
