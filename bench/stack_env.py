"""The environment the benches' stacks start with (shared by alert_to_mitigation and
intake_storm)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def hermetic(state: Path, **extra: str) -> Iterator[None]:
    """This process's environment as the stack's children should inherit it: no Prefect or
    REMEDIATE_ settings of the caller's, a store and reports of the run's own, plus `extra`."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("PREFECT_", "REMEDIATE_")):
            del os.environ[key]
    os.environ.update(
        REMEDIATE_STORE__URL=f"sqlite:///{state / 'incidents.db'}",
        REMEDIATE_INCIDENTS__REPORTS_DIR=str(state / "incidents"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        **extra,
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
