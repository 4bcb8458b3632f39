"""Alertmanager webhook payloads (version "4"): the one way monitoring hands an incident to us.

Alertmanager batches alerts by `group_by`, resends whole groups on every repeat, and delivers
at least once, so the models keep each alert's `fingerprint` (its identity) and refuse any
payload that is not version "4" (a custom `payload` template can replace the body entirely).
Unknown keys are accepted and ignored: v0.34 added `routeLabels`, later versions will add more.

`parse_alertmanager` turns bytes, text or a dict into an `AlertBatch`, or raises
`InvalidAlertPayload` whose message names the first problem the way an operator would look for
it: `alerts[2].startsAt: invalid datetime`, `version is '3', expected '4'`, `not JSON: ...`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

EXPECTED_VERSION = "4"


class InvalidAlertPayload(ValueError):
    """The body is not an Alertmanager v4 webhook payload; the message says where and why."""


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Alert(_Payload):
    status: AlertStatus
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    # Go's zero time ("0001-01-01T00:00:00Z") for alerts without an end parses fine.
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def firing(self) -> bool:
        return self.status is AlertStatus.FIRING

    @property
    def idempotency_key(self) -> tuple[str, str, str]:
        """(fingerprint, status, startsAt): endsAt moves on every resend of a firing alert."""
        return (self.fingerprint, self.status.value, self.starts_at.isoformat())


class AlertBatch(_Payload):
    """One webhook POST: a group of alerts sharing `groupKey`."""

    version: str
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
    status: AlertStatus
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(
        default="", validation_alias=AliasChoices("externalURL", "external_url")
    )
    alerts: tuple[Alert, ...]


class AlertTarget(BaseModel):
    """The Kubernetes object an alert is about, from the labels kube-state-metrics uses."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = None
    pod: str | None = None
    deployment: str | None = None
    service: str | None = None


def _location(loc: tuple[int | str, ...]) -> str:
    """Pydantic's location as JSON path text: ("alerts", 2, "startsAt") -> alerts[2].startsAt."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "payload"


def _describe(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "missing":
        return "missing"
    if kind.startswith("datetime"):
        return "invalid datetime"
    if kind == "enum":
        return f"{error.get('input')!r} is not one of 'firing', 'resolved'"
    return str(error.get("msg", "invalid"))


def _decode(raw: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidAlertPayload(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidAlertPayload(f"not a JSON object but a {type(data).__name__}")
    return data


def parse_alertmanager(raw: bytes | str | Mapping[str, Any]) -> AlertBatch:
    """An Alertmanager v4 webhook body as an AlertBatch, or InvalidAlertPayload naming why not."""
    data = _decode(raw)
    version = data.get("version")
    if version is None:
        raise InvalidAlertPayload("version: missing, expected '4'")
    if version != EXPECTED_VERSION:
        raise InvalidAlertPayload(f"version is {version!r}, expected '4'")
    try:
        return AlertBatch.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        problems = len(exc.errors())
        more = f" (and {problems - 1} more problem(s))" if problems > 1 else ""
        raise InvalidAlertPayload(
            f"{_location(tuple(first['loc']))}: {_describe(first)}{more}"
        ) from exc


def firing(batch: AlertBatch) -> tuple[Alert, ...]:
    """Only the alerts still firing: a resolved alert is history, never a reason to act."""
    return tuple(a for a in batch.alerts if a.firing)


def alert_target(alert: Alert) -> AlertTarget:
    """What the alert points at; kube-state-metrics and common rules use these label names."""
    labels = alert.labels
    return AlertTarget(
        namespace=labels.get("namespace") or labels.get("exported_namespace") or None,
        pod=labels.get("pod") or labels.get("exported_pod") or None,
        deployment=labels.get("deployment") or labels.get("workload") or None,
        service=labels.get("service") or labels.get("exported_service") or None,
    )
