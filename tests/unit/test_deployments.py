"""The served deployments and prefect.yaml declare the same flows under the same names, and the
revert runbook D schedules has something that executes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.serve import require_migrated_store, runner_deployments
from flows.revert_auth_enforce import DEPLOYMENT_NAME, FLOW_NAME
from flows.triage import TriageParams

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"


def test_serve_and_prefect_yaml_declare_the_same_deployments() -> None:
    served = {d.name: d for d in runner_deployments()}
    declared = {d["name"]: d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]}
    assert (
        set(served)
        == set(declared)
        == {
            "health-sweep",
            "triage",
            DEPLOYMENT_NAME,
            "post-incident",
        }
    )
    for name, deployment in served.items():
        assert set(deployment.tags) == set(declared[name]["tags"]), name
        assert deployment.entrypoint == declared[name]["entrypoint"], name


def test_the_revert_that_runbook_d_schedules_is_served() -> None:
    (revert,) = [d for d in runner_deployments() if d.name == DEPLOYMENT_NAME]
    assert revert.flow_name == FLOW_NAME
    assert {"hard-rule-revert", "P1"} <= set(revert.tags)


def test_triage_is_served_on_demand_and_dry_run_by_default() -> None:
    (deployment,) = [d for d in runner_deployments() if d.name == "triage"]
    assert deployment.schedules == []
    assert TriageParams().dry_run is True
    # No parameters baked in: a run started without any is a dry-run sweep.
    assert deployment.parameters == {}


def test_serve_refuses_an_unmigrated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_STORE__URL", f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SystemExit, match="run `remediate db upgrade`"):
        require_migrated_store()
