"""Event ordering the kubectl way, and the HPA controller's SuccessfulRescale messages.

`kubectl get events --sort-by=.lastTimestamp` sorts client-side and puts events without the
field first. Newer recorders leave lastTimestamp null and fill eventTime / series instead, so
the key falls back along Event.last_seen (eventTime, series.lastObservedTime, firstTimestamp,
creationTimestamp). The sort is stable: ties keep the server's order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from tasks.adapters.cluster import Event, Rescale

COMBINED_PREFIX = "(combined from similar events): "
_NEW_SIZE = re.compile(r"^New size: (?P<size>\d+); reason: (?P<reason>.*)$", re.DOTALL)


def event_sort_key(event: Event) -> tuple[bool, datetime | None]:
    seen = event.last_seen
    return (seen is not None, seen)


def sort_events(events: Iterable[Event]) -> list[Event]:
    """Oldest first, events without any timestamp first (as kubectl prints them)."""
    return sorted(events, key=event_sort_key)


def parse_rescale_message(message: str) -> tuple[int, str] | None:
    """(new size, reason) from "New size: 6; reason: cpu ... above target", or None."""
    text = message.strip()
    if text.startswith(COMBINED_PREFIX):
        text = text[len(COMBINED_PREFIX) :]
    match = _NEW_SIZE.match(text)
    if match is None:
        return None
    return int(match["size"]), match["reason"].strip()


def rescales(events: Iterable[Event]) -> tuple[Rescale, ...]:
    """The SuccessfulRescale history, oldest first; other events and odd messages are skipped."""
    history: list[Rescale] = []
    for event in sort_events(events):
        if event.reason != "SuccessfulRescale" or not event.message:
            continue
        parsed = parse_rescale_message(event.message)
        if parsed is None:
            continue
        size, reason = parsed
        history.append(
            Rescale(
                new_size=size,
                reason=reason,
                count=event.series_count or event.count,
                first_timestamp=event.first_timestamp or event.event_time,
                last_timestamp=event.last_seen,
                message=event.message,
            )
        )
    return tuple(history)
