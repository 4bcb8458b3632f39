"""parse_alertmanager: valid v4 payloads parse; every invalid one names its problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks.models.alerts import (
    AlertTarget,
    InvalidAlertPayload,
    alert_target,
    firing,
    parse_alertmanager,
)


def alert(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "KubePodCrashLooping", "namespace": "alphaswarm", "pod": "p-1"},
        "annotations": {"summary": "crash"},
        "startsAt": "2026-11-28T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "abc123",
    }
    return {**base, **overrides}


def payload(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "remediate",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "routeLabels": {"team": "ops"},  # v0.34 addition: unknown keys are accepted
        "alerts": list(alerts) or [alert()],
    }
    return {**base, **overrides}


@pytest.mark.parametrize("form", ["dict", "str", "bytes"])
def test_valid_payload_parses_from_any_form(form: str) -> None:
    data = payload(alert(), alert(status="resolved", fingerprint="def456"))
    raw: Any = {"dict": data, "str": json.dumps(data), "bytes": json.dumps(data).encode()}[form]
    batch = parse_alertmanager(raw)
    assert batch.version == "4" and len(batch.alerts) == 2
    assert [a.fingerprint for a in firing(batch)] == ["abc123"]
    assert batch.alerts[0].name == "KubePodCrashLooping"
    assert batch.alerts[0].idempotency_key[0] == "abc123"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not JSON: "),
        ("[1, 2]", "not a JSON object but a list"),
        (payload(version="3"), "version is '3', expected '4'"),
        (payload(version=4), "version is 4, expected '4'"),
        ({k: v for k, v in payload().items() if k != "version"}, "version: missing"),
        (
            payload(alert(), alert(), alert(startsAt="yesterday")),
            "alerts[2].startsAt: invalid datetime",
        ),
        (payload(alert(status="pending")), "alerts[0].status: 'pending' is not one of"),
        (payload(alert(fingerprint=None)), "alerts[0].fingerprint: "),
        ({**payload(), "alerts": None}, "alerts: "),
        ({k: v for k, v in payload().items() if k != "status"}, "status: missing"),
    ],
)
def test_invalid_payloads_name_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(InvalidAlertPayload) as caught:
        parse_alertmanager(raw)
    assert str(caught.value).startswith(message), str(caught.value)


def test_missing_alert_field_is_named() -> None:
    broken = alert()
    del broken["fingerprint"]
    with pytest.raises(InvalidAlertPayload, match=r"^alerts\[0\]\.fingerprint: missing$"):
        parse_alertmanager(payload(broken))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"namespace": "alphaswarm", "pod": "p-1"}, AlertTarget(namespace="alphaswarm", pod="p-1")),
        (
            {"exported_namespace": "alphaswarm", "deployment": "alphaswarm-core"},
            AlertTarget(namespace="alphaswarm", deployment="alphaswarm-core"),
        ),
        ({"service": "alphaswarm-client"}, AlertTarget(service="alphaswarm-client")),
        ({}, AlertTarget()),
    ],
)
def test_alert_target(labels: dict[str, str], expected: AlertTarget) -> None:
    batch = parse_alertmanager(payload(alert(labels={"alertname": "X", **labels})))
    assert alert_target(batch.alerts[0]) == expected
