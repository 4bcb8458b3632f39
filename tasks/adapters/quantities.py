"""Resource quantities as `kubectl top` shows them: CPU in millicores, memory in bytes.

kubectl prints `MilliValue()` / `Value()`, which round up, so "1n" of CPU is 1m, not 0.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from kubernetes import utils

from tasks.adapters.errors import PermanentError

_parse_quantity: Any = utils.parse_quantity  # untyped in the client


def _parse(quantity: str | int | float) -> Decimal:
    try:
        value: Decimal = _parse_quantity(quantity)
        return value
    except ValueError as exc:
        raise PermanentError(f"not a Kubernetes quantity: {quantity!r}") from exc


def cpu_millicores(quantity: str | int | float) -> int:
    """ "187543210n" -> 188, "912m" -> 912, "2" -> 2000."""
    return math.ceil(_parse(quantity) * 1000)


def to_bytes(quantity: str | int | float) -> int:
    """ "301Mi" -> 315621376, "1k" -> 1000, "0.5Ki" -> 512."""
    return math.ceil(_parse(quantity))
