"""Alertmanager webhook payloads (version "4"): the one way monitoring hands an incident to us.

Alertmanager batches alerts by `group_by`, resends whole groups on every repeat, and delivers
at least once, so the models keep each alert's `fingerprint` (its identity) and refuse any
payload that is not version "4" (a custom `payload` template can replace the body entirely).
Unknown keys are accepted and ignored: v0.34 added `routeLabels`, later versions will add more.

`parse_alertmanager` turns bytes, text or a dict into an `AlertBatch`, or raises
`InvalidAlertPayload` whose message names the first problem the way an operator would look for
it: `alerts[2].startsAt: invalid datetime`, `version is '3', expected '4'`, `not JSON: ...`.
What no store can hold is refused here too, so that it is a 4xx (Alertmanager drops it) and not
a 5xx it would retry forever: a time without a zone or out of range in UTC, a string with a NUL
or a lone surrogate (an escaped `\ud800`), JSON nested too deeply to decode, and an
identity longer than a PostgreSQL index entry can be (far beyond anything Alertmanager sends).
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

EXPECTED_VERSION = "4"


class InvalidAlertPayload(ValueError):
    """The body is not an Alertmanager v4 webhook payload; the message says where and why."""


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _storable(text: str) -> str:
    """Refuse the strings neither SQLite nor PostgreSQL can store (nor UTF-8 encode)."""
    if "\x00" in text:
        raise ValueError("contains a NUL character (\\u0000)")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError("contains a lone surrogate (\\ud800-\\udfff): not Unicode") from None
    return text


def _in_utc_range(when: datetime) -> datetime:
    try:
        when.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None
    return when


def _at_most(limit: int, why: str) -> AfterValidator:
    def bounded(text: str) -> str:
        if len(text) > limit // 4 and len(text.encode()) > limit:
            raise ValueError(f"longer than {limit} bytes ({why})")
        return text

    return AfterValidator(bounded)


Text = Annotated[str, AfterValidator(_storable)]
# The store indexes these (directly, or in an incident's target key), and a PostgreSQL index
# entry holds at most about 2.7 kB: without a bound, a longer one would be a 5xx for ever.
Fingerprint = Annotated[Text, _at_most(256, "Alertmanager's are 16 hex digits")]
GroupKey = Annotated[Text, _at_most(2048, "the store indexes it")]
LabelValue = Annotated[Text, _at_most(1024, "the store indexes the names of the target")]
# RFC 3339, as Alertmanager sends it: always with a zone (the store keeps UTC).
When = Annotated[AwareDatetime, AfterValidator(_in_utc_range)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Alert(_Payload):
    status: AlertStatus
    # Alertmanager always sends `labels` (an alert is its label set): a body without it is not
    # an alert from Alertmanager, and refusing it beats triaging nothing.
    labels: dict[Text, LabelValue]
    annotations: dict[Text, Text] = Field(default_factory=dict)
    starts_at: When = Field(alias="startsAt")
    # Go's zero time ("0001-01-01T00:00:00Z") for alerts without an end parses fine.
    ends_at: When | None = Field(default=None, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL")
    fingerprint: Fingerprint

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
    group_key: GroupKey = Field(default="", alias="groupKey")
    # A Go uint64 in Alertmanager.
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0, le=2**64 - 1)
    status: AlertStatus
    receiver: Text = ""
    group_labels: dict[Text, Text] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[Text, Text] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[Text, Text] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text = Field(
        default="", validation_alias=AliasChoices("externalURL", "external_url")
    )
    alerts: tuple[Alert, ...]


class AlertTarget(BaseModel):
    """The Kubernetes object an alert is about, from the labels that kube-state-metrics,
    kube-prometheus's relabelling and the exporters put on it."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    deployment: str | None = None
    statefulset: str | None = None
    hpa: str | None = None
    service: str | None = None
    ingress: str | None = None
    job: str | None = None
    instance: str | None = None
    queue: str | None = None

    @property
    def named(self) -> str | None:
        """The most specific object the alert names, for a message."""
        return self.pod or self.deployment or self.statefulset or self.hpa or self.service


LONGEST_KEY_SHOWN = 60
LONGEST_VALUE_SHOWN = 200


def _shown(value: object) -> str:
    """The sender's value in a message, bounded: a hostile body must not come back whole."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = LONGEST_KEY_SHOWN
    short.maxlevel = 2
    # maxstring bounds each string, not their sum: a dict of escaped strings still ran to 600.
    shown = short.repr(value)
    return shown if len(shown) <= LONGEST_VALUE_SHOWN else f"{shown[: LONGEST_VALUE_SHOWN - 3]}..."


def _location(loc: tuple[int | str, ...]) -> str:
    """Pydantic's location as JSON path text: ("alerts", 2, "startsAt") -> alerts[2].startsAt."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            if len(part) > LONGEST_KEY_SHOWN:  # a label name is the sender's: keep it short
                part = f"{part[: LONGEST_KEY_SHOWN - 3]}..."
            text += f".{part}" if text else part
    return text or "payload"


def _describe(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "missing":
        return "missing"
    if kind.startswith("datetime"):
        return "invalid datetime"
    if kind == "enum":
        return f"{_shown(error.get('input'))} is not one of 'firing', 'resolved'"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _decode(raw: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidAlertPayload(f"not JSON: {exc}") from exc
    except RecursionError:
        raise InvalidAlertPayload("not JSON that can be read: nested too deeply") from None
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
        raise InvalidAlertPayload(f"version is {_shown(version)}, expected '4'")
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


def _first(labels: Mapping[str, str], *names: str) -> str | None:
    return next((labels[n] for n in names if labels.get(n)), None)


KUBE_STATE_METRICS = "kube-state-metrics"
OBJECT_LABELS = ("deployment", "statefulset", "horizontalpodautoscaler", "daemonset", "job_name")


def _is_object_alert(labels: Mapping[str, str]) -> bool:
    """The alert's `namespace` and `pod` are the object it is about: a kube-state-metrics rule,
    or a rule with no scrape job at all (recording rules, our own). An exporter's alert (job
    postgres-exporter, redis-exporter, celery-exporter, blackbox) carries the exporter pod's
    `namespace` and `pod` instead."""
    job = labels.get("job")
    return job is None or job == KUBE_STATE_METRICS


def alert_target(alert: Alert) -> AlertTarget:
    """What the alert points at, from the labels the rules really produce.

    kube-state-metrics alerts name the object in `namespace` and `pod` / `deployment` /
    `statefulset` / `horizontalpodautoscaler`; on the workload-level ones `pod` and `container`
    are kube-state-metrics' own pod, so `pod` counts only when no workload label is there.
    Exporter alerts name their subject otherwise: `queue_name`, `hostname` (a Celery worker),
    `instance` (a probed URL). ingress-nginx's carry the Ingress's namespace in
    `exported_namespace` and its name in `ingress`."""
    labels = alert.labels
    ingress = _first(labels, "ingress")
    objects = _is_object_alert(labels)
    workload = any(labels.get(name) for name in OBJECT_LABELS)
    namespace = (
        _first(labels, "exported_namespace", "namespace")
        if ingress
        else _first(labels, "namespace", "exported_namespace")
        if objects
        else _first(labels, "exported_namespace")
    )
    pod = (
        _first(labels, "pod", "exported_pod")
        if objects and not workload
        else (_first(labels, "hostname") or "").removeprefix("celery@") or None
    )
    return AlertTarget(
        namespace=namespace,
        pod=pod,
        container=_first(labels, "container") if objects and not workload else None,
        deployment=_first(labels, "deployment"),
        statefulset=_first(labels, "statefulset"),
        hpa=_first(labels, "horizontalpodautoscaler"),
        service=_first(labels, "exported_service")
        or (_first(labels, "service") if objects and not labels.get("job") else None),
        ingress=ingress,
        job=_first(labels, "job"),
        instance=_first(labels, "instance"),
        queue=_first(labels, "queue_name", "queue"),
    )


def out_of_scope(alert: Alert, namespaces: tuple[str, ...]) -> str | None:
    """Why the alert is not ours to act on, or None: it names a namespace outside `namespaces`.
    An alert without a namespace (a blackbox probe of the JWKS URL, say) stays in scope."""
    target = alert_target(alert)
    if target.namespace is None or target.namespace in namespaces:
        return None
    return (
        f"{alert.name or alert.fingerprint} about {target.namespace}/{target.named or '-'}: "
        f"namespace {target.namespace} is outside the configured namespaces "
        f"({', '.join(namespaces)})"
    )


def in_scope(
    batch: AlertBatch, namespaces: tuple[str, ...]
) -> tuple[AlertBatch | None, tuple[str, ...]]:
    """The batch with only the alerts about the configured namespaces (None when none is), and
    why each other one was left out."""
    ignored = tuple(why for a in batch.alerts if (why := out_of_scope(a, namespaces)))
    kept = tuple(a for a in batch.alerts if out_of_scope(a, namespaces) is None)
    if not kept:
        return None, ignored
    return batch.model_copy(update={"alerts": kept}), ignored
