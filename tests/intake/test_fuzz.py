"""The live intake under thousands of malformed and hostile payloads (hypothesis), with valid ones
mixed in: every answer is a 2xx or a 4xx, never a 5xx (Alertmanager would retry a 5xx for ever),
a 4xx says why in a short `error`, and every alert of every 2xx payload is in `alert_receipt`.
One intake (`running_intake`) on one SQLite store answers them all, so copies across payloads
are common.

What the fuzzing found is pinned below it, on both stores: each was a 5xx before
(`test_what_no_store_can_hold_is_a_4xx`, `test_json_nested_too_deeply_is_a_4xx`).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter
from sqlmodel import select

from deployments.intake.app import MAX_BODY_BYTES, WEBHOOK_PATH
from sandbox.alerts import crashloop_alert, webhook
from store.engine import session_for
from store.models import AlertReceipt
from tests.intake.conftest import running_intake

TOKEN = "fuzz-intake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_TYPE = {"Content-Type": "application/json"}
LONGEST_ERROR = 600  # a 4xx explains itself in a line; it never echoes a hostile body back

# About 50 s on two busy cores: answering 2,000 payloads, storing the valid ones. A deeper
# run: REMEDIATE_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/intake/test_fuzz.py
FUZZ = settings(
    max_examples=int(os.environ.get("REMEDIATE_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    database=None,  # no example database: a failure prints the @seed that reproduces it
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,  # one intake and one store serve every example
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# -- values ----------------------------------------------------------------------------------

storable_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
hostile_text = st.one_of(
    st.text(max_size=40),  # any code point but surrogates: controls, NUL, RTL, emoji
    st.text(st.characters(categories=["Cs", "Cc", "Cf", "Zs"]), max_size=10),  # lone surrogates
    st.sampled_from(
        [
            "",
            "4",
            "firing",
            "resolved",
            "FIRING",
            "null",
            "0001-01-01T00:00:00Z",
            "2026-13-45T99:99:99Z",
            "2026-01-01T00:00:00",
            "\x00",
            "\ud800",
            "\u202etxet",
            "\U0001f525" * 8,
            "'; DROP TABLE alert_receipt; --",
        ]
    ),
    # Huge strings: built from a drawn character and length, not drawn character by character.
    st.builds(lambda c, n: c * n, st.characters(), st.integers(1_000, 300_000)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and infinities too: Python's JSON writes and reads them
    hostile_text,
)
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)

namespaces = st.sampled_from(["alphaswarm", "alphaswarm-admin", "ingress-nginx", "kube-system", ""])
pods = st.sampled_from(["core-a", "core-b", "worker-a"]) | storable_text
fingerprints = (
    st.sampled_from(["0f1e2d3c4b5a6978", "a" * 16, "ffffffffffffffff"])
    | st.text(string.hexdigits, min_size=1, max_size=16)
    | storable_text
)
T0 = datetime(2026, 12, 2, 3, tzinfo=UTC)
EARLIEST, LATEST = datetime(1970, 1, 2, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
# Instants as whole milliseconds and zones as minutes: far fewer draws than st.datetimes.
milliseconds = st.sampled_from([0, 0, 60_000]) | st.integers(
    int((EARLIEST - T0).total_seconds() * 1000), int((LATEST - T0).total_seconds() * 1000)
)
zones = st.sampled_from([None, 0, 60, -300]) | st.integers(-(24 * 60 - 1), 24 * 60 - 1)


def rfc3339(milliseconds: int, zone: int | None) -> str:
    """T0 moved by `milliseconds`, written in the zone `zone` minutes east of UTC (None: Z)."""
    when = T0 + timedelta(milliseconds=milliseconds)
    if zone is None:
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return when.astimezone(timezone(timedelta(minutes=zone))).isoformat()


@st.composite
def valid_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """An alert the intake must accept, with storable but unfriendly text in it; fingerprints
    and instants often repeat, so copies (retries, HA replicas, repeats) are frequent."""
    alert = crashloop_alert(
        draw(namespaces), draw(pods), status=draw(st.sampled_from(["firing", "resolved"]))
    )
    alert["startsAt"] = rfc3339(draw(milliseconds), draw(zones))
    alert["fingerprint"] = draw(fingerprints)
    extra = draw(st.sampled_from([None, "labels", "annotations", "somethingNew"]))
    if extra == "somethingNew":
        alert[extra] = draw(any_json)  # unknown keys are accepted
    elif extra:
        alert[extra][draw(storable_text)] = draw(storable_text)
    return alert


@st.composite
def valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    body = webhook(draw(st.lists(valid_alerts(), min_size=1, max_size=4)))
    body["truncatedAlerts"] = draw(st.sampled_from([0, 0, 3]) | st.integers(0, 2**64 - 1))
    extra = draw(st.sampled_from([None, "receiver", "routeLabels", "commonLabels"]))
    if extra == "receiver":
        body[extra] = draw(storable_text)
    elif extra:
        body[extra][draw(storable_text)] = draw(storable_text)
    return body


# -- what gets sent ----------------------------------------------------------------------------


class Delivery:
    """What one POST sends. Not a dataclass: hypothesis prints those field by field, and a body
    can be megabytes."""

    def __init__(
        self, body: bytes, headers: dict[str, str] | None = None, *, must_accept: bool = False
    ) -> None:
        self.body = body
        self.headers = AUTH | JSON_TYPE if headers is None else headers
        self.must_accept = must_accept  # a valid payload: anything but a 200 is a bug

    def __repr__(self) -> str:
        body = self.body
        shown = body if len(body) <= 2_000 else body[:1_000] + b"..." + body[-500:]
        return (
            f"Delivery({shown!r}, {len(body)} bytes, headers={self.headers!r}, "
            f"must_accept={self.must_accept})"
        )


def sent(body: Any, headers: dict[str, str] | None = None, *, valid: bool = False) -> Delivery:
    """`body` as JSON; `valid`: a payload the intake must accept, unless it is over the limit."""
    encoded = json.dumps(body).encode()
    return Delivery(encoded, headers, must_accept=valid and len(encoded) <= MAX_BODY_BYTES)


@st.composite
def valid_deliveries(draw: st.DrawFn) -> Delivery:
    return sent(draw(valid_payloads()), valid=True)


@st.composite
def any_json_body(draw: st.DrawFn) -> Delivery:
    return sent(draw(any_json))


ALERT_FIELDS = [
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
]
BATCH_FIELDS = [
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
]


@st.composite
def wrong_field(draw: st.DrawFn) -> Delivery:
    """A valid payload with one field of the batch or of one alert replaced, or taken out."""
    body = draw(valid_payloads())
    where = body if draw(st.booleans()) else draw(st.sampled_from(body["alerts"]))
    key = draw(st.sampled_from(BATCH_FIELDS if where is body else ALERT_FIELDS))
    if draw(st.integers(0, 4)) == 0:
        where.pop(key, None)
    else:
        where[key] = draw(any_json)
    return sent(body)


@st.composite
def wrong_label(draw: st.DrawFn) -> Delivery:
    """A label or annotation that is not a string, or is a hostile string."""
    body = draw(valid_payloads())
    alert = draw(st.sampled_from(body["alerts"]))
    kind = draw(st.sampled_from(["labels", "annotations", "groupLabels", "commonLabels"]))
    where = alert if kind in ("labels", "annotations") else body
    where[kind][draw(hostile_text)] = draw(any_json)
    return sent(body)


@st.composite
def mixed_alerts(draw: st.DrawFn) -> Delivery:
    """Valid alerts with one that is not an alert among them."""
    body = draw(valid_payloads())
    body["alerts"].insert(draw(st.integers(0, len(body["alerts"]))), draw(any_json))
    return sent(body)


@st.composite
def wrong_version(draw: st.DrawFn) -> Delivery:
    body = draw(valid_payloads())
    body["version"] = draw(
        st.sampled_from(["3", "5", "4 ", " 4", "\uff14", 4, 4.0, "", "v4", ["4"]]) | any_json
    )
    return sent(body)


@st.composite
def deep(draw: st.DrawFn) -> Delivery:
    """Nesting far past what a JSON decoder recurses into, alone or inside a payload."""
    depth = draw(st.integers(1, 200_000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = opening * depth + "1" + closing * depth
    if draw(st.booleans()):
        return Delivery(nested.encode())
    body = json.dumps(draw(valid_payloads()))
    slot = draw(st.sampled_from(['"alerts": ', '"labels": ', '"routeLabels": ']))
    return Delivery(body.replace(slot, f'{slot}{nested}, "x": ', 1).encode())


def with_key_twice(value: Any, key: str, other: Any, before: bool) -> str:
    """JSON text of `value` where every object holding `key` holds it twice: `other` first (the
    decoder keeps the real one) or last (the decoder keeps `other`)."""
    if isinstance(value, dict):
        pairs = []
        for k, v in value.items():
            pair = f"{json.dumps(k)}: {with_key_twice(v, key, other, before)}"
            if k == key:
                extra = f"{json.dumps(k)}: {json.dumps(other)}"
                pairs += [extra, pair] if before else [pair, extra]
            else:
                pairs.append(pair)
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(with_key_twice(v, key, other, before) for v in value) + "]"
    return json.dumps(value)


@st.composite
def duplicate_keys(draw: st.DrawFn) -> Delivery:
    """A key given twice: JSON decoders keep the last one, and so must the stored receipt."""
    body = draw(valid_payloads())
    key = draw(
        st.sampled_from(["version", "alerts", "status", "fingerprint", "startsAt", "labels"])
    )
    other = draw(any_json | st.sampled_from(["4", "firing", "resolved", "2026-01-01T00:00:00Z"]))
    return Delivery(with_key_twice(body, key, other, draw(st.booleans())).encode())


@st.composite
def giant_labels(draw: st.DrawFn) -> Delivery:
    """Thousands of labels on an alert, within the body limit: valid, and stored whole."""
    body = draw(valid_payloads())
    count = draw(st.integers(1_000, 10_000))
    width = draw(st.integers(1, 20))
    alert = draw(st.sampled_from(body["alerts"]))
    alert["labels"].update({f"label_{i}": "v" * width for i in range(count)})
    return sent(body, valid=True)


@st.composite
def raw_bodies(draw: st.DrawFn) -> Delivery:
    """Not JSON, not UTF-8, not an object, not a payload at all."""
    body = draw(
        st.binary(max_size=200)
        | st.binary(max_size=50).map(lambda b: b'{"version": "4", "x": "' + b"\xff\xfe" + b + b'"}')
        | any_json.map(lambda v: json.dumps(v).encode())
        | st.sampled_from([b"", b"null", b"[]", b"{}", b'"4"', b"{not json", b"\xef\xbb\xbf{}"])
    )
    headers = draw(
        st.sampled_from(
            [
                AUTH | JSON_TYPE,
                AUTH,
                AUTH | {"Content-Type": "text/plain"},
                AUTH | JSON_TYPE | {"Content-Encoding": "gzip"},
            ]
        )
    )
    return Delivery(body, headers)


@st.composite
def bad_auth(draw: st.DrawFn) -> Delivery:
    body = draw(valid_payloads())
    token = draw(
        st.sampled_from(
            ["", "Bearer", f"bearer {TOKEN}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN]
        )
        | st.text(string.printable.strip(), min_size=1, max_size=60).map(lambda t: f"Bearer {t}")
    )
    return sent(body, headers=JSON_TYPE | ({"Authorization": token} if token else {}))


deliveries = st.one_of(
    valid_deliveries(),
    wrong_field(),
    wrong_label(),
    mixed_alerts(),
    wrong_version(),
    deep(),
    duplicate_keys(),
    giant_labels(),
    raw_bodies(),
    bad_auth(),
    any_json_body(),
)

# -- the properties ------------------------------------------------------------------------------

_when = TypeAdapter(AwareDatetime)


def stored(store: str, alert: dict[str, Any]) -> bool:
    starts_at = _when.validate_python(alert["startsAt"])
    with session_for(store) as s:
        found = s.exec(
            select(AlertReceipt.id)
            .where(AlertReceipt.fingerprint == alert["fingerprint"])
            .where(AlertReceipt.status == alert["status"])
            .where(AlertReceipt.starts_at == starts_at)
        ).first()
    return found is not None


def check_answer(answer: httpx.Response, delivery: Delivery, store: str) -> None:
    """2xx or 4xx with a JSON body; a 4xx says why, briefly; a 2xx stored every alert."""
    what = f"{answer.status_code} {answer.text[:300]!r} for {delivery.body[:300]!r}"
    assert 200 <= answer.status_code < 300 or 400 <= answer.status_code < 500, what
    assert answer.headers["content-type"] == "application/json", what
    reply = answer.json()
    if answer.status_code >= 400:
        error = reply.get("error")
        assert isinstance(error, str) and error.strip(), what
        assert len(error) <= LONGEST_ERROR, what
        if answer.status_code == 422:
            reason = error.removeprefix("not an Alertmanager v4 payload: ")
            assert reason != error and reason.strip(), what
        assert not delivery.must_accept, what
        return
    alerts = json.loads(delivery.body)["alerts"]  # the decoder's reading: the last of a key
    assert reply["accepted"] + reply["duplicates"] == len(alerts), what
    lost = [a for a in alerts if not stored(store, a)]
    assert not lost, f"accepted but not stored: {lost[:3]!r}"


@pytest.fixture
def client(incident_store: str) -> Iterator[httpx.Client]:
    with running_intake(TOKEN) as c:
        yield c


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a failure's megabytes
@FUZZ
@given(delivery=deliveries)
def test_every_answer_is_2xx_or_4xx_and_no_accepted_alert_is_lost(
    client: httpx.Client, incident_store: str, delivery: Delivery
) -> None:
    answer = client.post(WEBHOOK_PATH, content=delivery.body, headers=delivery.headers)
    check_answer(answer, delivery, incident_store)


def test_bodies_at_and_over_the_limit(client: httpx.Client, incident_store: str) -> None:
    """A payload of exactly MAX_BODY_BYTES is read (and stored: a giant label map); one byte more
    is a 413; a much larger one too. Nothing of the refused ones is stored."""
    body = webhook(
        [crashloop_alert("alphaswarm", "core-a", starts_at=datetime(2026, 1, 1, tzinfo=UTC))]
    )
    text = json.dumps(body)
    filler = MAX_BODY_BYTES - len(text) - len(', "padding": ""')
    exact = (text[:-1] + f', "padding": "{"p" * filler}"' + "}").encode()
    assert len(exact) == MAX_BODY_BYTES
    check_answer(
        client.post(WEBHOOK_PATH, content=exact, headers=AUTH), Delivery(exact), incident_store
    )
    for size in (MAX_BODY_BYTES + 1, 3 * MAX_BODY_BYTES):
        answer = client.post(WEBHOOK_PATH, content=b" " * size, headers=AUTH)
        assert answer.status_code == 413 and "bytes" in answer.json()["error"]


# -- what the fuzzing found: each of these was a 5xx ----------------------------------------------


def _alert(**changes: Any) -> dict[str, Any]:
    return crashloop_alert("alphaswarm", "core-a", starts_at=T0) | changes


def _labelled(**labels: Any) -> dict[str, Any]:
    """A payload whose one alert (and only it: not commonLabels) carries `labels`."""
    body = webhook([_alert()])
    body["alerts"][0]["labels"].update(labels)
    return body


@pytest.mark.parametrize(
    ("body", "names"),
    [
        # 503, retried for ever: the store refuses a naive time, or one out of range in UTC.
        (
            webhook([_alert(startsAt="2026-12-02T03:00:00")]),
            "alerts[0].startsAt: Input should have timezone",
        ),
        (
            webhook([_alert(startsAt="0001-01-01T00:00:00+01:00")]),
            "alerts[0].startsAt: out of range",
        ),
        (webhook([_alert(endsAt="9999-12-31T23:59:59-01:00")]), "alerts[0].endsAt: out of range"),
        # 500: a lone surrogate cannot be encoded, into the store or into the answer.
        (
            webhook([_alert(fingerprint="\ud800")]),
            "alerts[0].fingerprint: contains a lone surrogate",
        ),
        (_labelled(pod="core-\udfff"), "alerts[0].labels.pod: contains a lone"),
        # 503 on PostgreSQL, retried for ever: text cannot hold NUL; an index entry is < 2.7 kB.
        (webhook([_alert(fingerprint="a\x00b")]), "alerts[0].fingerprint: contains a NUL"),
        (
            webhook([_alert(fingerprint="f" * 10_000)]),
            "alerts[0].fingerprint: longer than 256 bytes",
        ),
        (_labelled(pod="p" * 10_000), "alerts[0].labels.pod: longer than 1024"),
        (webhook([_alert()]) | {"groupKey": "g" * 10_000}, "groupKey: longer than 2048 bytes"),
        # Not from Alertmanager (a Go uint64), and a 4,000-digit count is no message.
        (webhook([_alert()], truncated=-5), "truncatedAlerts: Input should be greater than"),
        (webhook([_alert()], truncated=10**4000), "truncatedAlerts: Input should be less than"),
    ],
)
def test_what_no_store_can_hold_is_a_4xx(any_store: str, body: dict[str, Any], names: str) -> None:
    with running_intake(TOKEN) as client:
        answer = client.post(WEBHOOK_PATH, content=json.dumps(body).encode(), headers=AUTH)
        assert answer.status_code == 422, answer.text
        assert names in answer.json()["error"]
        with session_for(any_store) as s:
            assert s.exec(select(AlertReceipt)).first() is None


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["array", "object"],
)
def test_json_nested_too_deeply_is_a_4xx(incident_store: str, raw: bytes) -> None:
    """It was a 500: the decoder's RecursionError went up to the server."""
    with running_intake(TOKEN) as client:
        answer = client.post(WEBHOOK_PATH, content=raw, headers=AUTH)
        assert answer.status_code == 422
        assert "nested too deeply" in answer.json()["error"]


def test_a_hostile_value_is_not_echoed_whole(incident_store: str) -> None:
    """The answer names the field and shows the start of what was there, not 100 kB of it."""
    with running_intake(TOKEN) as client:
        for body in (
            webhook([_alert()]) | {"version": "x" * 100_000},
            webhook([_alert(status="s" * 100_000)]),
            _labelled(**{"k" * 100_000: 1}),
        ):
            answer = client.post(WEBHOOK_PATH, json=body, headers=AUTH)
            assert answer.status_code == 422
            assert len(answer.json()["error"]) < 300, answer.json()["error"]
