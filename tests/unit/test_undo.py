"""What a set-env change records to put back, and what `undo` makes of it: the exact value of
the containers it changed, never a guess when there is no one plain value."""

from __future__ import annotations

import pytest

from tasks.adapters.errors import PermanentError
from tasks.changes.models import (
    FROM_REF,
    MIXED,
    SetDeploymentEnv,
    Target,
    undo,
)

CORE = Target(kind="Deployment", namespace="alphaswarm", name="alphaswarm-core")


def flip(container: str | None = None) -> SetDeploymentEnv:
    return SetDeploymentEnv(
        target=CORE, variable="ALPHASWARM_AUTH_ENFORCE", value="permissive", container=container
    )


def test_the_value_every_container_had_is_put_back_in_every_container() -> None:
    revert = flip().revert_for({"core": "enforce", "sidecar": "enforce"})
    assert revert is not None
    back = undo(revert)
    assert isinstance(back, SetDeploymentEnv)
    assert (back.value, back.container, back.variable) == (
        "enforce",
        None,
        "ALPHASWARM_AUTH_ENFORCE",
    )


def test_an_unset_variable_is_unset_again() -> None:
    revert = flip().revert_for({"core": None})
    assert revert is not None
    back = undo(revert)
    assert isinstance(back, SetDeploymentEnv) and back.value is None


def test_a_change_to_one_container_is_put_back_in_that_container_only() -> None:
    revert = flip("sidecar").revert_for({"sidecar": "off"})
    assert revert is not None
    back = undo(revert)
    assert isinstance(back, SetDeploymentEnv)
    assert (back.value, back.container) == ("off", "sidecar")


@pytest.mark.parametrize(
    ("before", "said"),
    [
        ({"core": "enforce", "sidecar": "off"}, "different in each container"),
        ({"core": FROM_REF}, "a valueFrom reference"),
        ({"core": FROM_REF, "sidecar": "enforce"}, "different in each container"),
    ],
)
def test_no_single_plain_value_is_refused_not_guessed(before: dict[str, str], said: str) -> None:
    revert = flip().revert_for(before)
    assert revert is not None and revert.value in (FROM_REF, MIXED)
    with pytest.raises(PermanentError, match=said):
        undo(revert)
