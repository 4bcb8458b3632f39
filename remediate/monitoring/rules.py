"""The project's one rule set (infra/prometheus/alphaswarm-remediate-rules.yaml) as the rule file
Prometheus and promtool read, at production or rehearsal speed.

Extraction. The repository keeps the rules once, as a PrometheusRule (what prometheus-operator
loads in a cluster). Prometheus and promtool want a rule file, `groups:` at the top: that is the
CRD's `spec`, and `rule_file_text` is the one place that takes it out. Nothing else in the
repository holds a copy of the rules; the promtool unit tests (infra/prometheus/tests/) and the
rehearsal's Prometheus read what this module writes.

The rehearsal transformation, `rehearsal_rule_file(text, speed)`: the same groups, rules,
expressions, labels and annotations, with only durations changed, each divided by `speed`
(remediate/monitoring/timing.py has the floors and their reasons):

- every rule's `for:` (at least one evaluation interval; `0s` stays `0s`);
- every range selector in `expr` (`[5m]`, `[15m]`, `[10m]`) and both durations of a subquery
  (`[30m:1m]`), at least RANGE_MIN_SCRAPES scrape intervals so rate() and changes() keep two
  samples or more;
- `offset` durations (none today), without a floor;
- a group's own `interval:` or a rule's `keep_firing_for:` when present (same floor as `for:`).

Annotations keep their production text ("for longer than 15 minutes"): they describe the rule,
not the rehearsal. Durations inside string literals (label matchers) and comments are left
alone. `python -m remediate.monitoring [--speed N] [FILE]` prints the result.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from remediate.monitoring.timing import DURATION, Timing

RULE_FILE = (
    Path(__file__).resolve().parents[2]
    / "infra"
    / "prometheus"
    / ("alphaswarm-remediate-rules.yaml")
)

# A range selector or subquery, `[5m]` / `[30m:1m]` / `[30m:]`, and an `offset 5m`.
_RANGE = re.compile(rf"\[\s*({DURATION})\s*(?::\s*({DURATION})?\s*)?\]")
_OFFSET = re.compile(rf"\boffset(\s+)(-?)({DURATION})")


def rule_groups(text: str) -> dict[str, Any]:
    """`{"groups": [...]}` from a PrometheusRule manifest (its `spec`) or from a rule file
    already in Prometheus's format. The one place the CRD is unwrapped."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError("a rule file is a mapping with `groups:`, or a PrometheusRule")
    if doc.get("kind") == "PrometheusRule":
        doc = doc["spec"]
    groups = doc.get("groups")
    if not isinstance(groups, list) or set(doc) != {"groups"}:
        raise ValueError("a rule file holds exactly `groups:` (a list)")
    return {"groups": groups}


def dump(groups: dict[str, Any]) -> str:
    """YAML as written for Prometheus: keys in the rule set's own order, long lines kept."""
    return yaml.safe_dump(groups, sort_keys=False, width=10_000, allow_unicode=True)


def rule_file_text(text: str) -> str:
    """The production rule file (`groups:`) for the rule set `text`."""
    return dump(rule_groups(text))


def _outside_strings(expr: str, change: Callable[[str], str]) -> str:
    """Apply `change` to the parts of a PromQL expression that are code, not string literals
    ("...", '...', `...`) or `#` comments: a regex matcher may contain `[0-9]`."""
    out: list[str] = []
    code_start = i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'`#":
            out.append(change(expr[code_start:i]))
            end = expr.find("\n", i) if ch == "#" else _string_end(expr, i)
            end = len(expr) if end < 0 else end
            out.append(expr[i:end])
            code_start = i = end
        else:
            i += 1
    out.append(change(expr[code_start:]))
    return "".join(out)


def _string_end(expr: str, start: int) -> int:
    """The index just past the literal opening at `start` (backslash escapes in "..." and
    '...', none in `...`); the end of the text if it never closes."""
    quote, i = expr[start], start + 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    return len(expr)


def scale_expr(expr: str, timing: Timing) -> str:
    """`expr` with its range selectors, subquery steps and offsets at `timing`'s speed."""

    def ranges(match: re.Match[str]) -> str:
        window, step = match[1], match[2]
        if ":" not in match[0]:
            return f"[{timing.range(window)}]"
        return f"[{timing.range(window)}:{timing.plain(step) if step else ''}]"

    def offsets(match: re.Match[str]) -> str:
        return f"offset{match[1]}{match[2]}{timing.plain(match[3])}"

    return _outside_strings(expr, lambda code: _OFFSET.sub(offsets, _RANGE.sub(ranges, code)))


def rehearsal_groups(text: str, speed: float) -> dict[str, Any]:
    """The rule set `text` with every duration divided by `speed` (this module's docstring)."""
    timing = Timing(speed)
    groups = copy.deepcopy(rule_groups(text))
    for group in groups["groups"]:
        if "interval" in group:
            group["interval"] = timing.hold(group["interval"])
        for rule in group["rules"]:
            rule["expr"] = scale_expr(str(rule["expr"]), timing)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = timing.hold(rule[key])
    return groups


def rehearsal_rule_file(text: str, speed: float) -> str:
    """The rule file Prometheus loads in a rehearsal at `speed` (60: 60x faster)."""
    return dump(rehearsal_groups(text, speed))


def main(argv: list[str] | None = None) -> None:
    """Print the rule file, for promtool by hand (infra/prometheus/tests/ says how)."""
    parser = argparse.ArgumentParser(prog="python -m remediate.monitoring")
    parser.add_argument("file", nargs="?", type=Path, default=RULE_FILE)
    parser.add_argument("--speed", type=float, default=None, help="rehearsal speed factor")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    sys.stdout.write(
        rule_file_text(text) if args.speed is None else rehearsal_rule_file(text, args.speed)
    )
