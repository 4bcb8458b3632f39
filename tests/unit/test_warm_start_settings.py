"""A warm run reuses the Prefect settings the forkserver read, only when it would read the same
(deployments/warm_start.py: `run_settings`), and is handed its flow's entrypoint from the
deployments table (`with_entrypoint`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import Settings

from deployments import warm_start


@pytest.fixture
def read_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The forkserver's reading, in this process; the environment a run would be handed."""
    monkeypatch.setattr(warm_start, "_settings", None)
    warm_start._read_settings()
    assert warm_start._settings is not None
    env = {**os.environ, "PREFECT__FLOW_RUN_ID": "a-run", "PREFECT__CONTROL_TOKEN": "t"}
    env.update(warm_start._settings[2].to_environment_variables(exclude_unset=True))
    yield env


def test_a_run_with_the_same_environment_gets_the_settings_already_read(
    read_once: dict[str, str],
) -> None:
    assert warm_start._settings is not None
    assert warm_start.run_settings(read_once) is warm_start._settings[2]


def test_a_run_with_another_prefect_variable_reads_its_own(
    read_once: dict[str, str],
) -> None:
    env = {**read_once, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    settings = warm_start.run_settings(env)
    assert isinstance(settings, Settings)
    assert warm_start._settings is not None
    assert settings is not warm_start._settings[2]


def test_a_run_in_another_folder_reads_its_own(
    read_once: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a .env or prefect.toml there would be read
    assert warm_start._settings is not None
    assert warm_start.run_settings(read_once) is not warm_start._settings[2]


def test_the_runners_hand_overs_are_not_settings() -> None:
    env = {"PREFECT_API_URL": "http://x/api", "PREFECT__FLOW_RUN_ID": "1", "HOME": "/root"}
    assert warm_start.prefect_environment(env) == {"PREFECT_API_URL": "http://x/api"}


def test_a_warm_run_is_handed_its_flows_entrypoint_from_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deployments.table import DEPLOYMENTS

    monkeypatch.setattr(warm_start, "_entrypoints", {d.name: d.entrypoint for d in DEPLOYMENTS})
    env = warm_start.with_entrypoint({"PREFECT__DEPLOYMENT_NAME": "triage"})
    assert env["PREFECT__FLOW_ENTRYPOINT"] == "flows.triage.triage"
    # One the runner set stays; an unknown deployment gets none.
    given = {"PREFECT__DEPLOYMENT_NAME": "triage", "PREFECT__FLOW_ENTRYPOINT": "x.y"}
    assert warm_start.with_entrypoint(dict(given)) == given
    assert "PREFECT__FLOW_ENTRYPOINT" not in warm_start.with_entrypoint(
        {"PREFECT__DEPLOYMENT_NAME": "not-served-here"}
    )
