"""infra/prometheus's one rule set, checked by the real promtool: the PrometheusRule's `spec`
passes `promtool check rules`, the unit tests under infra/prometheus/tests/ pass `promtool test
rules` and cover every alert (pending before its `for:`, firing after, with the labels triage
reads), and the rehearsal transformation changes durations and nothing else.

promtool is Debian's `prometheus` package (make system-deps installs it). A missing promtool
fails these tests: it is a broken machine, not a reason to skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediate.monitoring.rules import (
    RULE_FILE,
    rehearsal_groups,
    rehearsal_rule_file,
    rule_file_text,
    rule_groups,
    scale_expr,
)
from remediate.monitoring.timing import Timing, parse_duration
from tasks.models.alerts import Alert, AlertTarget, alert_target

TESTS = RULE_FILE.parent / "tests"
UNIT_TESTS = sorted(TESTS.glob("*.yaml"))
REHEARSAL_TEST = TESTS / "rehearsal" / "speed-60.yaml"
RANGES = re.compile(r"\[[^\]\"'`]*\]")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not on the PATH: apt-get install prometheus (make system-deps)")
    return found


def run(promtool: str, *args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups(RULE_FILE.read_text())["groups"] for r in g["rules"]]


def rule_names() -> set[str]:
    return {r["alert"] for r in rules()}


def unit_tests(path: Path) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(path.read_text())["tests"]
    return tests


def alert_cases() -> list[tuple[str, dict[str, Any]]]:
    """(test name, alert_rule_test case) of every case in the production-speed unit tests."""
    return [
        (test.get("name", path.name), case)
        for path in UNIT_TESTS
        for test in unit_tests(path)
        for case in test.get("alert_rule_test", [])
    ]


def _seconds(value: str | int) -> float:
    return parse_duration(str(value)) if isinstance(value, str) else float(value)


def test_the_crd_is_not_a_rule_file_but_its_spec_is(promtool: str, tmp_path: Path) -> None:
    """Why rule_file_text exists: promtool (and Prometheus) refuse the PrometheusRule itself."""
    refused = subprocess.run(
        [promtool, "check", "rules", str(RULE_FILE)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "field spec not found" in refused.stdout + refused.stderr
    extracted = tmp_path / "rules.yml"
    extracted.write_text(rule_file_text(RULE_FILE.read_text()))
    assert f"SUCCESS: {len(rules())} rules found" in run(promtool, "check", "rules", extracted)
    assert len(rules()) == 10


def test_the_unit_tests_pass(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(rule_file_text(RULE_FILE.read_text()))
    for path in UNIT_TESTS:
        shutil.copy(path, tmp_path / path.name)
    output = run(promtool, "test", "rules", *(p.name for p in UNIT_TESTS), cwd=tmp_path)
    assert output.count("SUCCESS") == len(UNIT_TESTS), output


def test_every_alert_fires_in_a_unit_test_after_being_pending() -> None:
    """Each alert: a case where it fires, an earlier case where it does not yet, and an
    ALERTS{alertstate="pending"} check before it fires, in the same test."""
    fired: dict[str, float] = {}
    for path in UNIT_TESTS:
        for test in unit_tests(path):
            cases = test.get("alert_rule_test", [])
            pending = {
                (m[1], _seconds(check["eval_time"]))
                for check in test.get("promql_expr_test", [])
                for sample in check.get("exp_samples", [])
                if (m := re.search(r'alertname="(\w+)",alertstate="pending"', sample["labels"]))
            }
            for case in cases:
                if not case.get("exp_alerts"):
                    continue
                name, at = case["alertname"], _seconds(case["eval_time"])
                quiet_before = any(
                    c["alertname"] == name
                    and not c.get("exp_alerts")
                    and _seconds(c["eval_time"]) < at
                    for c in cases
                )
                pending_before = any(n == name and t < at for n, t in pending)
                if quiet_before and pending_before:
                    fired.setdefault(name, at)
    assert set(fired) == rule_names()


# What triage must be able to read from each alert's labels (tasks/models/alerts.py alert_target).
NAMES_THE_OBJECT = {
    "KubePodCrashLooping": lambda t: t.namespace and t.pod and t.container,
    "KubeHpaMaxedOut": lambda t: t.namespace and t.hpa and t.pod is None,
    "KubeHpaReplicasMismatch": lambda t: t.namespace and t.hpa and t.pod is None,
    "KubeStatefulSetReplicasMismatch": lambda t: t.namespace and t.statefulset and t.pod is None,
    "CeleryHighQueueLength": lambda t: t.queue and t.job and "celery" in t.job,
    "CeleryWorkerDown": lambda t: t.pod and t.pod.startswith("alphaswarm-worker-"),
    "PostgresqlDown": lambda t: t.instance and t.job == "postgres-exporter" and not t.namespace,
    "RedisDown": lambda t: t.instance and t.job == "redis-exporter" and not t.namespace,
    "BlackboxProbeFailed": lambda t: t.instance and t.instance.startswith("https://"),
    "NginxHighHttp5xxErrorRate": lambda t: (t.namespace, t.ingress) == ("alphaswarm", "alphaswarm"),
}


def _target(name: str, labels: dict[str, str]) -> AlertTarget:
    return alert_target(
        Alert.model_validate(
            {
                "status": "firing",
                "labels": {"alertname": name, **{k: str(v) for k, v in labels.items()}},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "0123456789abcdef",
            }
        )
    )


def test_the_alerts_the_unit_tests_expect_name_what_triage_acts_on() -> None:
    assert set(NAMES_THE_OBJECT) == rule_names()
    for test_name, case in alert_cases():
        for expected in case.get("exp_alerts") or []:
            target = _target(case["alertname"], expected["exp_labels"])
            assert NAMES_THE_OBJECT[case["alertname"]](target), (test_name, target)


# -- the rehearsal transformation -----------------------------------------------------------------


@pytest.mark.parametrize("speed", [1, 60, 600, 6000])
def test_the_rehearsal_rule_file_passes_promtool(
    promtool: str, tmp_path: Path, speed: float
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(rehearsal_rule_file(RULE_FILE.read_text(), speed))
    assert f"SUCCESS: {len(rules())} rules found" in run(promtool, "check", "rules", path)


@pytest.mark.parametrize("speed", [1, 60, 6000])
def test_the_rehearsal_changes_durations_and_nothing_else(speed: float) -> None:
    original = rule_groups(RULE_FILE.read_text())
    scaled = rehearsal_groups(RULE_FILE.read_text(), speed)
    timing = Timing(speed)
    for group, fast_group in zip(original["groups"], scaled["groups"], strict=True):
        assert group["name"] == fast_group["name"]
        for rule, fast in zip(group["rules"], fast_group["rules"], strict=True):
            assert {k: v for k, v in rule.items() if k not in ("for", "expr")} == {
                k: v for k, v in fast.items() if k not in ("for", "expr")
            }
            assert RANGES.sub("[D]", rule["expr"]) == RANGES.sub("[D]", fast["expr"])
            expected = max(parse_duration(rule["for"]) / speed, timing.evaluation_interval)
            assert parse_duration(fast["for"]) == pytest.approx(expected, abs=0.001)
            pairs = zip(RANGES.findall(rule["expr"]), RANGES.findall(fast["expr"]), strict=True)
            for slow_range, fast_range in pairs:
                seconds = parse_duration(fast_range.strip("[]"))
                assert seconds == pytest.approx(
                    max(parse_duration(slow_range.strip("[]")) / speed, timing.range_floor),
                    abs=0.001,
                )
                # rate() and changes() need two samples: the range spans several scrapes.
                assert seconds >= 4 * timing.scrape_interval - 0.001


def test_speed_one_is_production() -> None:
    assert rehearsal_groups(RULE_FILE.read_text(), 1) == rule_groups(RULE_FILE.read_text())


def test_only_code_is_scaled_never_string_literals() -> None:
    expr = 'rate(x{path=~"/a[5m]"}[10m] offset 1h) + y[30m:1m] # [15m]'
    assert (
        scale_expr(expr, Timing(60)) == 'rate(x{path=~"/a[5m]"}[10s] offset 1m) + y[30s:1s] # [15m]'
    )


def test_a_rule_at_speed_60_passes_its_unit_test_with_scaled_timings(
    promtool: str, tmp_path: Path
) -> None:
    (tmp_path / "rules-speed-60.yml").write_text(rehearsal_rule_file(RULE_FILE.read_text(), 60))
    shutil.copy(REHEARSAL_TEST, tmp_path / REHEARSAL_TEST.name)
    run(promtool, "test", "rules", REHEARSAL_TEST.name, cwd=tmp_path)
    # ... which the production timings fail: the test is about the scaling.
    (tmp_path / "rules-speed-60.yml").write_text(rule_file_text(RULE_FILE.read_text()))
    failed = subprocess.run(
        [promtool, "test", "rules", REHEARSAL_TEST.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert failed.returncode != 0
